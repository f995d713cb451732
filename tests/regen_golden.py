"""Write the expected output beside golden fixtures.

Usage: .venv/bin/python tests/regen_golden.py PATH... [--force]

For each fixture PATH (`.eml` or `.json`; a directory means every fixture under
it), writes `<stem>.expected.json` with `parse_path(PATH).to_json()` (indent 2,
UTF-8, trailing newline). An existing expected file is left alone unless
`--force` is given; either way a unified diff of what changed (or would change)
is printed, so a regeneration can be reviewed before it is committed.
Exit 0 when nothing was refused, 1 when an existing file differs and `--force`
was not given, 2 for a path that cannot be read.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

from mailsync.errors import InputError
from mailsync.parsers.files import parse_path

EXPECTED_SUFFIX = ".expected.json"
INPUT_SUFFIXES = (".eml", ".json")


def is_fixture(path: Path) -> bool:
    """A parse input (not an expected-output file)."""
    return path.suffix in INPUT_SUFFIXES and not path.name.endswith(EXPECTED_SUFFIX)


def expected_path(fixture: Path) -> Path:
    """Where the expected output of `fixture` lives."""
    return fixture.with_name(fixture.stem + EXPECTED_SUFFIX)


def render(fixture: Path) -> str:
    """The expected-file text for `fixture`."""
    data = parse_path(fixture).to_json()
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _fixtures(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if is_fixture(p)))
        else:
            found.append(path)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    parser.add_argument("--force", action="store_true", help="overwrite changes")
    args = parser.parse_args(argv)
    code = 0
    for fixture in _fixtures(args.paths):
        if not is_fixture(fixture):
            print(f"skipped {fixture}: not an .eml or .json input", file=sys.stderr)
            continue
        try:
            new = render(fixture)
        except InputError as err:
            print(f"regen_golden: {err}", file=sys.stderr)
            code = 2
            continue
        target = expected_path(fixture)
        old = target.read_text(encoding="utf-8") if target.exists() else None
        if old == new:
            continue
        if old is not None:
            sys.stdout.writelines(
                difflib.unified_diff(
                    old.splitlines(keepends=True),
                    new.splitlines(keepends=True),
                    fromfile=f"{target} (current)",
                    tofile=f"{target} (parsed now)",
                )
            )
            if not args.force:
                print(f"refused {target}: it exists and differs (use --force)")
                code = max(code, 1)
                continue
        target.write_text(new, encoding="utf-8")
        print(f"{'updated' if old is not None else 'wrote'} {target}")
    return code


if __name__ == "__main__":
    sys.exit(main())
