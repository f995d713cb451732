"""One bad value must not block a deal: values are cleaned and clamped before
merging, a refused field never holds back the record or later events, and a
field the org lacks is a dead letter naming it (saved mails replayed through
the CLI into the Salesforce emulator)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import run_mailsync
from sfemu import Emulator
from sfemu.schema import load_schema
from sfemu.testing import emulator, sf_secrets

from mailsync.crm import clamp, merge
from mailsync.crm import mapping as m

__all__ = ["emulator", "sf_secrets"]
EMAIL = Path(__file__).parent / "fixtures/email"
AGMT = "agmt-uyxkpascmi91rjakjdggd6e66"
BUYER = "045711836474"
HOSTILE = "Evil\x1b]0;pwned\x07 " + "N" * 100_000
#: cleaned (ESC and BEL gone) and cut to 255 with the ellipsis
CLAMPED = ("Evil]0;pwned " + "N" * 100_000)[:254] + "…"


def test_lengths_match_the_deployable_metadata() -> None:
    schema = load_schema()
    for obj, lengths in m.LENGTHS.items():
        deployed = {
            f.name: f.length
            for f in schema[obj].fields.values()
            if f.type in ("string", "textarea") and f.name in m.FIELDS[obj]
        }
        assert lengths == deployed, obj


def test_clamp_values_and_keys() -> None:
    assert clamp.text(HOSTILE, 255) == CLAMPED and len(CLAMPED) == 255
    assert clamp.text("Acme\r\nCorp\x00", 255) == "Acme  Corp"
    assert clamp.text("😀" * 10, 7) == "😀😀😀…"  # UTF-16 units, as Salesforce
    long_id = "email:" + "x" * 300 + "@example"
    short = clamp.key(long_id, 255)
    assert len(short) == 255 and short.startswith("email:xxx")
    assert short != clamp.key("email:" + "x" * 301 + "@example", 255)
    assert clamp.key("email:m1@example", 255) == "email:m1@example"


def test_touches_are_clean_and_fit(tmp_path: Path) -> None:
    from mailsync.event import Event, Kind

    event = Event(
        kind=Kind.OFFER_ACCEPTED,
        source_id="<" + "m" * 400 + ">",
        agreement_id=AGMT,
        customer_account_id=BUYER,
        customer_name=HOSTILE,
        channel_partner_name="Partner\u202e\x9b2J",
    )
    by_obj = {t.obj: t for t in m.touches(event)}
    assert by_obj[m.ACCOUNT].facts[m.NAME] == CLAMPED
    agreement = by_obj[m.AGREEMENT].facts
    assert agreement["Customer_Name__c"] == CLAMPED
    assert agreement["Channel_Partner_Name__c"] == "Partner2J"
    assert by_obj[m.EVENT].facts["Source_ID__c"] == "<" + "m" * 253 + "…"
    scan = Event(kind=Kind.SECURITY_SCAN_REPORTED, source_id="m" * 400)
    (row,) = m.touches(scan)
    assert row.key == clamp.key("email:" + "m" * 400, 255) and len(row.key) == 255


def test_a_refused_value_stays_out_until_it_changes() -> None:
    record = merge.MirrorRecord(m.AGREEMENT, AGMT)
    merge.apply(record, m.Touch(m.AGREEMENT, AGMT, {"Customer_Name__c": "Bad"}), "1")
    merge.refuse(record, ["Customer_Name__c"])
    assert "Customer_Name__c" not in merge.render(record)
    again = merge.MirrorRecord.from_json(m.AGREEMENT, AGMT, record.to_json())
    assert "Customer_Name__c" not in merge.render(again)  # survives the mirror
    merge.apply(record, m.Touch(m.AGREEMENT, AGMT, {"Customer_Name__c": "Good"}), "2")
    assert merge.render(record)["Customer_Name__c"] == "Good"
    merge.refuse(record, ["Customer_Name__c"])
    merge.forgive(record)
    assert merge.render(record)["Customer_Name__c"] == "Good"


# -- through the CLI and the emulator -----------------------------------------


def inputs(folder: Path) -> tuple[Path, Path]:
    """An accepted offer with a 100,000-character hostile customer name, and
    the later cancellation of the same agreement."""
    folder.mkdir()
    accepted = folder / "1-accepted.eml"
    accepted.write_bytes(
        (EMAIL / "offer.accepted/isv_public_plain_no_end_date.eml")
        .read_bytes()
        .replace(b"Northwind Analytics LLC", HOSTILE.encode())
    )
    cancelled = folder / "2-cancelled.eml"
    cancelled.write_bytes(
        (EMAIL / "agreement.cancelled/cppo_cp_new_sender.eml")
        .read_bytes()
        .replace(b"agmt-yys0sm3vcoyio581ekrqtdeu3", AGMT.encode())
        .replace(b"412127130263", BUYER.encode())
    )
    return accepted, cancelled


@pytest.fixture
def sf_config(tmp_path: Path, emulator: Emulator, sf_secrets: None) -> Path:
    path = tmp_path / "mailsync.toml"
    path.write_text(
        f'[state]\npath = "{tmp_path / "state.sqlite3"}"\n\n'
        "[security]\nrequire_dkim = false\n\n"
        '[crm]\nbackend = "salesforce"\n\n[crm.salesforce]\nauth = "password"\n'
        f'username = "{emulator.username}"\nendpoint_url = "{emulator.url}"\n'
        'password_env = "MAILSYNC_TEST_SF_PASSWORD"\n'
        'security_token_env = "MAILSYNC_TEST_SF_TOKEN"\n'
    )
    path.chmod(0o600)
    return path


def replay(cfg: Path, path: Path) -> tuple[int, str]:
    done = run_mailsync("replay", str(path), "--config", str(cfg))
    assert "Traceback" not in done.stderr and ": rejected" not in done.stderr, (
        done.stderr
    )
    return done.returncode, done.stdout.strip()


def agreement(emu: Emulator) -> dict[str, Any]:
    (row,) = emu.records("AWS_Agreement__c")
    return row


def dead_letters(cfg: Path) -> list[dict[str, Any]]:
    done = run_mailsync("quarantine", "list", "--format", "json", "--config", str(cfg))
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)["dead_letters"]
    return rows


def test_huge_hostile_name_is_clamped_and_the_cancellation_lands(
    tmp_path: Path, sf_config: Path, emulator: Emulator
) -> None:
    accepted, cancelled = inputs(tmp_path / "saved")
    assert replay(sf_config, accepted) == (
        0,
        "replayed 1 input (1 new): 3 CRM records written, 0 refused, 0 pending",
    )
    row = agreement(emulator)
    assert (row["Status__c"], row["Customer_Name__c"]) == ("Active", CLAMPED)
    (account,) = emulator.records("Account")
    assert account["Name"] == CLAMPED
    code, out = replay(sf_config, cancelled)
    assert code == 0 and out.endswith("0 refused, 0 pending"), out
    row = agreement(emulator)
    assert (row["Agreement_ID__c"], row["Status__c"], row["Customer_Name__c"]) == (
        AGMT,
        "Cancelled",
        CLAMPED,
    )
    assert dead_letters(sf_config) == []


def test_a_refused_field_and_a_refused_account_do_not_block_the_deal(
    tmp_path: Path, sf_config: Path, emulator: Emulator
) -> None:
    """The org refuses the name everywhere: the Agreement through a rule on
    its field, the Account as a whole record (so children cannot reference
    it). The deal lands without them, and so does the later cancellation."""

    def rule(
        obj: str, old: dict[str, Any] | None, new: dict[str, Any]
    ) -> tuple[str, str, list[str]] | None:
        if obj == "AWS_Agreement__c" and "Evil" in new.get("Customer_Name__c", ""):
            return (
                "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                "No evil names",
                ["Customer_Name__c"],
            )
        if obj == "Account" and "Evil" in new.get("Name", ""):
            return ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "No evil buyers", [])
        return None

    emulator.add_validation(rule)
    accepted, cancelled = inputs(tmp_path / "saved")
    code, out = replay(sf_config, accepted)
    assert code == 1 and "2 refused" in out, out
    row = agreement(emulator)
    assert (row["Status__c"], row.get("Customer_Name__c"), row.get("Account__c")) == (
        "Active",
        None,
        None,
    )
    assert emulator.records("Account") == []
    refused = {
        (d["object"], d["error_code"], d["message"]) for d in dead_letters(sf_config)
    }
    assert refused == {
        ("AWS_Agreement__c", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "No evil names"),
        ("Account", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "No evil buyers"),
    }

    replay(sf_config, cancelled)
    row = agreement(emulator)
    assert (row["Status__c"], row.get("Customer_Name__c")) == ("Cancelled", None)
    assert row["End_Date__c"] == "2027-03-02"


def test_missing_field_is_a_dead_letter_with_salesforces_reason(
    tmp_path: Path, sf_config: Path, emulator: Emulator
) -> None:
    removed = emulator.remove_field("AWS_Agreement__c", "Customer_Name__c")
    accepted, cancelled = inputs(tmp_path / "saved")
    code, out = replay(sf_config, accepted)
    assert (code, out) == (
        1,
        "replayed 1 input (1 new): 3 CRM records written, 1 refused, 0 pending"
        " (the CRM lacks"
        " AWS_Agreement__c.Customer_Name__c: deploy config/salesforce"
        " (mailsync check lists what is missing))",
    )
    (dead,) = dead_letters(sf_config)
    assert (
        dead["object"],
        dead["external_id"],
        dead["error_code"],
        dead["message"],
    ) == (
        "AWS_Agreement__c",
        AGMT,
        "INVALID_FIELD",
        "No such column 'Customer_Name__c' on sobject of type AWS_Agreement__c",
    )
    assert agreement(emulator)["Status__c"] == "Active"  # the rest landed
    replay(sf_config, cancelled)
    assert agreement(emulator)["Status__c"] == "Cancelled"
    check = run_mailsync("check", "--config", str(sf_config))
    assert (
        "FAIL salesforce AWS_Agreement__c: missing fields: Customer_Name__c;"
        in check.stdout
    )

    # the admin deploys the field and retries: the refused value is written
    emulator.deploy_field("AWS_Agreement__c", removed)
    retry = run_mailsync(
        "quarantine", "retry", "--dead-letters", "--config", str(sf_config)
    )
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert retry.stdout.splitlines()[-1] == (
        "CRM dead letters: 1 re-sent, 1 written, 0 refused again"
    )
    row = agreement(emulator)
    assert (row["Status__c"], row["Customer_Name__c"]) == ("Cancelled", CLAMPED)
    assert dead_letters(sf_config) == []
