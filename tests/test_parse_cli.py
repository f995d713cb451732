"""`mailsync parse` run as a real subprocess (contract section 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from mailsync.event import all_json_keys

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # parse needs no config: point the default somewhere that does not exist.
    env["MAILSYNC_CONFIG"] = str(cwd / "no-such-config.toml")
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "mailsync", "parse", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


def _lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def _copy(tmp_path: Path, rel: str) -> str:
    target = tmp_path / Path(rel).name
    target.write_bytes((FIXTURES / rel).read_bytes())
    return target.name


def test_one_line_per_input_in_order_with_input_first(tmp_path: Path) -> None:
    names = [
        _copy(tmp_path, "eventbridge/offer_released_cppo.json"),
        _copy(tmp_path, "sns/raw_subscribe_success.json"),
        _copy(tmp_path, "eventbridge/negative_malformed_json.json"),
        _copy(tmp_path, "sns/subscribe_fail.json"),
    ]
    result = _run(*names, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rows = _lines(result.stdout)
    assert [row["input"] for row in rows] == names
    assert [row["kind"] for row in rows] == [
        "offer.released",
        "subscription.succeeded",
        "unrecognized",
        "subscription.failed",
    ]
    for row in rows:
        assert list(row) == ["input", *all_json_keys()]
    expected = json.loads(
        (FIXTURES / "sns/subscribe_fail.expected.json").read_text(encoding="utf-8")
    )
    assert {k: v for k, v in rows[3].items() if k != "input"} == expected


def test_input_is_the_path_as_given(tmp_path: Path) -> None:
    sub = tmp_path / "saved"
    sub.mkdir()
    (sub / "a.json").write_bytes(
        (FIXTURES / "sns/unsubscribe_pending.json").read_bytes()
    )
    result = _run("./saved//a.json", cwd=tmp_path)
    assert result.returncode == 0
    assert _lines(result.stdout)[0]["input"] == "./saved//a.json"


def test_unreadable_path_exits_2_and_the_others_still_print(tmp_path: Path) -> None:
    first = _copy(tmp_path, "sns/entitlement_updated.json")
    last = _copy(tmp_path, "eventbridge/license_deprovisioned.json")
    result = _run(first, "missing.json", last, cwd=tmp_path)
    assert result.returncode == 2
    assert [row["input"] for row in _lines(result.stdout)] == [first, last]
    errors = result.stderr.splitlines()
    assert errors == ["mailsync: missing.json: no such file"]
    assert "Traceback" not in result.stderr


def test_require_trust_rejects_everything_unverified(tmp_path: Path) -> None:
    sns = _copy(tmp_path, "sns/subscribe_success_compact.json")
    eb = _copy(tmp_path, "eventbridge/created_renew.json")
    odd = _copy(tmp_path, "sns/unknown_action.json")
    result = _run("--require-trust", sns, eb, odd, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = _lines(result.stdout)
    assert [row["trust"] for row in rows] == ["rejected"] * 3
    assert rows[0]["kind"] == "subscription.succeeded"
    assert rows[0]["reason"] == "not verified: no SNS signature check is configured"
    assert rows[1]["reason"] == (
        "not verified: EventBridge events carry no signature of their own"
    )
    assert rows[2]["reason"] == (
        "not verified: no SNS signature check is configured; "
        "SNS message with unknown action 'subscribe-maybe'"
    )


def test_without_require_trust_nothing_is_rejected(tmp_path: Path) -> None:
    name = _copy(tmp_path, "sns/subscribe_success_compact.json")
    rows = _lines(_run(name, cwd=tmp_path).stdout)
    assert rows[0]["trust"] == "unverified"
    assert rows[0]["reason"] is None


def test_non_ascii_is_written_as_utf8(tmp_path: Path) -> None:
    data = json.loads(
        (FIXTURES / "eventbridge/offer_released_cppo.json").read_text(encoding="utf-8")
    )
    data["detail"]["offer"]["name"] = "Müller GmbH – 3 Jahre"
    (tmp_path / "o.json").write_text(json.dumps(data), encoding="utf-8")
    result = _run("o.json", cwd=tmp_path)
    assert "Müller GmbH – 3 Jahre" in result.stdout
    assert _lines(result.stdout)[0]["offer_name"] == "Müller GmbH – 3 Jahre"


def test_folder_and_standard_input(tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    (saved / "sub").mkdir(parents=True)
    (saved / "b.json").write_bytes((FIXTURES / "sns/subscribe_fail.json").read_bytes())
    (saved / "sub" / "a.json").write_bytes(
        (FIXTURES / "eventbridge/offer_released_cppo.json").read_bytes()
    )
    (saved / ".hidden.json").write_text("{}")
    result = _run("saved", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = _lines(result.stdout)
    assert [(r["input"], r["kind"]) for r in rows] == [
        ("saved/b.json", "subscription.failed"),
        ("saved/sub/a.json", "offer.released"),
    ]
    env = dict(os.environ)
    env["MAILSYNC_CONFIG"] = str(tmp_path / "no-such-config.toml")
    env["PYTHONPATH"] = str(REPO)
    for fixture, kind in (
        ("sns/subscribe_fail.json", "subscription.failed"),
        ("email/offer.accepted/isv_public_plain_no_end_date.eml", "offer.accepted"),
    ):
        piped = subprocess.run(
            [sys.executable, "-m", "mailsync", "parse", "-"],
            input=(FIXTURES / fixture).read_bytes(),
            capture_output=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
        assert piped.returncode == 0, piped.stderr
        row = json.loads(piped.stdout)
        assert (row["input"], row["kind"]) == ("-", kind)
