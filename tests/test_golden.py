"""Golden test: every saved input under tests/fixtures parses to its expected file.

Each `X.eml` / `X.json` fixture has an `X.expected.json` beside it holding
`parse_path(X).to_json()`. Regenerate after a deliberate change with
`tests/regen_golden.py PATH --force` and review the printed diff.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest
import regen_golden

from mailsync.parsers.files import parse_path

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED_SUFFIX = regen_golden.EXPECTED_SUFFIX
INPUT_SUFFIXES = regen_golden.INPUT_SUFFIXES


def _inputs() -> list[Path]:
    return sorted(
        p for p in FIXTURES.rglob("*") if p.is_file() and regen_golden.is_fixture(p)
    )


def _expected_files() -> list[Path]:
    return sorted(FIXTURES.rglob("*" + EXPECTED_SUFFIX))


def _dump(data: object) -> list[str]:
    text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False)
    return (text + "\n").splitlines(keepends=True)


@pytest.mark.parametrize(
    "fixture", _inputs(), ids=lambda p: str(p.relative_to(FIXTURES))
)
def test_fixture_matches_expected(fixture: Path) -> None:
    expected_file = regen_golden.expected_path(fixture)
    assert expected_file.exists(), (
        f"{fixture.relative_to(FIXTURES)} has no expected file; create it with "
        f"tests/regen_golden.py {fixture} and review it"
    )
    expected = json.loads(expected_file.read_text(encoding="utf-8"))
    actual = parse_path(fixture).to_json()
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                _dump(expected),
                _dump(actual),
                fromfile=f"{expected_file.name} (expected)",
                tofile=f"{fixture.name} (parsed)",
            )
        )
        pytest.fail(f"parse output differs from the expected file:\n{diff}")


def test_every_expected_file_has_a_fixture() -> None:
    orphans = [
        str(path.relative_to(FIXTURES))
        for path in _expected_files()
        if not any(
            path.with_name(path.name[: -len(EXPECTED_SUFFIX)] + suffix).exists()
            for suffix in INPUT_SUFFIXES
        )
    ]
    assert orphans == []


def test_the_golden_set_covers_every_channel() -> None:
    # Guards against the glob silently matching nothing (a moved directory).
    channels = {
        json.loads(p.read_text(encoding="utf-8"))["channel"] for p in _expected_files()
    }
    assert {"sns", "eventbridge"} <= channels


def test_regen_golden_writes_refuses_and_forces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixture = tmp_path / "case.json"
    fixture.write_bytes((FIXTURES / "sns/subscribe_fail.json").read_bytes())
    target = tmp_path / "case.expected.json"

    assert regen_golden.main([str(fixture)]) == 0
    written = target.read_text(encoding="utf-8")
    assert written.endswith("}\n")
    assert json.loads(written) == parse_path(fixture).to_json()

    target.write_text(written.replace("subscription.failed", "x"), encoding="utf-8")
    assert regen_golden.main([str(fixture)]) == 1
    out = capsys.readouterr().out
    assert '-  "kind": "x",' in out and '+  "kind": "subscription.failed",' in out
    assert "refused" in out
    assert '"kind": "x"' in target.read_text(encoding="utf-8")

    assert regen_golden.main([str(tmp_path), "--force"]) == 0
    assert target.read_text(encoding="utf-8") == written
    assert regen_golden.main([str(tmp_path / "missing.json")]) == 2
