"""Coverage-guided fuzzing of the parsers with atheris (libFuzzer).

Each input's first byte picks the parser (even: `parse_email`, odd:
`parse_json`); the rest is the raw input. The invariants are those of
tests/test_fuzz.py: never an exception, an `unrecognized` result has a
one-line reason, `to_json()` has exactly the contract keys and serializes.

    .venv/bin/pip install -e '.[fuzz]'
    .venv/bin/python tests/fuzz/fuzz_parse.py --make-corpus /tmp/corpus
    .venv/bin/python tests/fuzz/fuzz_parse.py /tmp/corpus -max_len=65536 -runs=100000

`--make-corpus DIR` seeds DIR from tests/fixtures (with the selector byte).

Importing this module needs neither atheris nor a fuzzing run; atheris is
only imported by `main()`.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from mailsync.event import Event, all_json_keys
from mailsync.parsers import parse_email
from mailsync.parsers.json_input import parse_json

KEYS = list(all_json_keys())
FIXTURES = Path(__file__).parent.parent / "fixtures"


def check_one(data: bytes) -> None:
    """Parse one fuzzer input and assert the invariants (raise on a bug)."""
    if not data:
        return
    raw = data[1:]
    event = parse_email(raw) if data[0] % 2 == 0 else parse_json(raw)
    if not isinstance(event, Event):
        raise TypeError(f"parser returned {type(event).__name__}, not Event")
    if not event.recognized and (not event.reason or "\n" in event.reason):
        raise AssertionError(f"bad reason for unrecognized input: {event.reason!r}")
    out = event.to_json()
    if list(out) != KEYS:
        raise AssertionError("to_json() keys differ from the contract keys")
    json.dumps(out)


def make_corpus(target: Path) -> int:
    """Copy the fixtures into `target` as fuzzer inputs; return how many."""
    target.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in sorted(FIXTURES.rglob("*")):
        if path.suffix not in (".eml", ".json") or path.name.endswith(".expected.json"):
            continue
        selector = b"\x00" if path.suffix == ".eml" else b"\x01"
        name = f"{path.parent.name}-{path.name}"
        (target / name).write_bytes(selector + path.read_bytes())
        count += 1
    return count


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[1] == "--make-corpus":
        print(f"{make_corpus(Path(argv[2]))} inputs written to {argv[2]}")
        return
    import atheris

    logging.getLogger("mailparser").setLevel(logging.ERROR)
    atheris.instrument_all()
    atheris.Setup(argv, check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
