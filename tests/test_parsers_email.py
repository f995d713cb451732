"""Email classification and extraction across renderings the fixtures lack.

The golden test checks every fixture's full output; these tests check the
registry (exactly one parser per fixture), the unrecognized paths, and extra
renderings (label order, blank lines, NBSP, tabs, bold labels, th/td tables,
subject prefixes and suffixes, generic subjects, forwards).
"""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

import mailsync.parsers as parsers
from mailsync.event import Kind, Role
from mailsync.parsers import EMAIL_PARSERS, email_view, match_email, parse_email

FIXTURES = Path(__file__).parent / "fixtures"
EMAILS = sorted((FIXTURES / "email").rglob("*.eml"))
NEGATIVES = sorted((FIXTURES / "negative").rglob("*.eml"))

AGMT = "agmt-q1w2e3r4t5y6u7i8o9p0a1s2d"
PROD = "prod-z9x8c7v6b5n4m"
OFFER = "offer-l0k9j8h7g6f5d"

LINES = [
    ("Customer company name", "Northwind Analytics LLC"),
    ("Customer AWS account ID", "009876543210"),
    ("Product name", "Acme Data Guard"),
    ("Product ID", PROD),
    ("Offer ID", OFFER),
    ("Agreement ID", AGMT),
    ("Agreement start date", "04-01-2026"),
    ("Agreement end date", "03-31-2027"),
    ("Purchase amount", "USD 12,500.00"),
]


def mail(subject: str, body: str, *, html: bool = False, headers: str = "") -> bytes:
    kind = "html" if html else "plain"
    return (
        "From: AWS Marketplace <no-reply@marketplace.aws>\n"
        "To: sales@example.com\n"
        f"Subject: {subject}\n"
        "Date: Wed, 01 Apr 2026 10:00:00 +0200\n"
        "Message-ID: <robust-1@example.net>\n"
        f"{headers}MIME-Version: 1.0\n"
        f'Content-Type: text/{kind}; charset="utf-8"\n'
        "Content-Transfer-Encoding: 8bit\n\n" + body
    ).encode()


def plain(lines: list[tuple[str, str]], sep: str = ": ", gap: str = "\n") -> str:
    return (
        "Hello,\n\n" + gap.join(f"{label}{sep}{value}" for label, value in lines) + "\n"
    )


def assert_accepted(raw: bytes) -> None:
    event = parse_email(raw)
    assert event.reason is None
    assert event.kind is Kind.OFFER_ACCEPTED
    assert event.agreement_id == AGMT
    assert event.product_id == PROD
    assert event.offer_id == OFFER
    assert event.customer_account_id == "009876543210"
    assert event.customer_name == "Northwind Analytics LLC"
    assert event.start_date is not None and event.start_date.isoformat() == "2026-04-01"
    assert event.end_date is not None and event.end_date.isoformat() == "2027-03-31"
    assert event.purchase_amount is not None
    assert event.purchase_amount.to_json() == {"amount": "12500.00", "currency": "USD"}
    assert event.recipient_role is Role.ISV
    assert event.agreement_status == "ACTIVE"
    assert event.source_id == "robust-1@example.net"
    assert event.occurred_at == datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
    assert event.dedupe_ids == ("robust-1@example.net",)


TITLE = "Customer accepted an AWS Marketplace offer"


@pytest.mark.parametrize("path", EMAILS, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_every_email_fixture_is_claimed_by_exactly_one_parser(path: Path) -> None:
    view = email_view(path.read_bytes())
    claimed = [p.name for p in EMAIL_PARSERS if p.matches_title(_title(view.subject))]
    parser = match_email(view)
    assert parser is not None
    assert parser.kind.value == path.parent.name
    assert len(claimed) <= 1  # subject-claimed by at most one (body fallback else)


@pytest.mark.parametrize("path", NEGATIVES, ids=lambda p: p.name)
def test_negatives_are_unrecognized_with_a_one_line_reason(path: Path) -> None:
    event = parse_email(path.read_bytes())
    assert event.kind is Kind.UNRECOGNIZED
    assert event.reason and "\n" not in event.reason
    assert not event.reason.startswith("ambiguous")


def _title(subject: str) -> str:
    from mailsync.parsers.base import normalize_title

    return normalize_title(subject)


def test_registry_names_are_unique_and_cover_every_email_kind() -> None:
    names = [p.name for p in EMAIL_PARSERS]
    assert len(names) == len(set(names))
    kinds = {p.kind for p in EMAIL_PARSERS}
    assert len(kinds) == 14
    assert {k.value for k in kinds} == {
        p.name for p in (FIXTURES / "email").iterdir()
    } - {
        "_cases.py",
        "__pycache__",
    }


@pytest.mark.parametrize(
    "subject",
    [
        TITLE,
        TITLE + ".",
        TITLE.upper(),
        "[AWS Marketplace] " + TITLE,
        "AWS Notification - " + TITLE,
        "Fwd: FW: " + TITLE,
        TITLE + " - Acme Data Guard",
        "=?utf-8?q?Customer_accepted_an_AWS_Marketplace_offer?=",
    ],
)
def test_subject_variants(subject: str) -> None:
    assert_accepted(mail(subject, plain(LINES)))


@pytest.mark.parametrize(
    "subject",
    [
        "You accepted an AWS Marketplace offer",
        "Customer accepted an AWS Marketplace offer? Not quite",
        "Re: " + TITLE,
        "Automatic reply: " + TITLE,
        "Out of Office: " + TITLE,
    ],
)
def test_lookalike_subjects_are_unrecognized(subject: str) -> None:
    assert parse_email(mail(subject, plain(LINES))).kind is Kind.UNRECOGNIZED


def test_label_order_blank_lines_nbsp_and_tabs() -> None:
    shuffled = LINES[:]
    random.Random(7).shuffle(shuffled)
    assert_accepted(mail(TITLE, plain(shuffled, gap="\n\n\n")))
    nbsp = [(label.replace(" ", "\u00a0"), value) for label, value in LINES]
    assert_accepted(mail(TITLE, plain(nbsp, sep=":\u00a0")))
    assert_accepted(mail(TITLE, plain(LINES, sep="\t")))
    assert_accepted(mail(TITLE, plain(LINES, sep=":\n")))
    assert_accepted(mail(TITLE, plain(LINES, sep="  :  ")))


def test_html_renderings() -> None:
    rows = "".join(f"<tr><th>{lb}</th><td>{v}</td></tr>" for lb, v in LINES)
    assert_accepted(mail(TITLE, f"<table>{rows}</table>", html=True))
    bold = "".join(f"<div><strong>{lb}:</strong>&nbsp;{v}</div>" for lb, v in LINES)
    assert_accepted(mail(TITLE, bold, html=True))
    vertical = "".join(f"<p>{lb}</p><p>{v}</p>" for lb, v in LINES)
    assert_accepted(mail(TITLE, vertical, html=True))
    dl = "<dl>" + "".join(f"<dt>{lb}</dt><dd>{v}</dd>" for lb, v in LINES) + "</dl>"
    assert_accepted(mail(TITLE, dl, html=True))


def test_generic_subject_with_title_atop_the_body() -> None:
    body = "AWS Marketplace\n\n" + TITLE + "\n\nView in Notification Center\n\n"
    body += "\n".join(f"{label}\n{value}\n" for label, value in LINES)
    assert_accepted(mail("AWS User Notifications: new notification", body))


def test_plain_part_without_fields_falls_back_to_the_html_part() -> None:
    rows = "".join(f"<tr><td>{lb}</td><td>{v}</td></tr>" for lb, v in LINES)
    raw = (
        "From: AWS Marketplace <no-reply@marketplace.aws>\nSubject: " + TITLE + "\n"
        "Date: Wed, 01 Apr 2026 10:00:00 +0200\nMessage-ID: <robust-1@example.net>\n"
        'MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="xx"\n\n'
        "--xx\nContent-Type: text/plain\n\nView this email in an HTML reader.\n"
        "--xx\nContent-Type: text/html\nContent-Transfer-Encoding: base64\n\n"
        + base64.encodebytes(f"<table>{rows}</table>".encode()).decode()
        + "--xx--\n"
    )
    assert_accepted(raw.encode())


def test_outlook_html_forward_takes_the_original_date_and_subject() -> None:
    fields = "".join(f"<p>{lb}: {v}</p>" for lb, v in LINES)
    body = (
        "<p>FYI</p><div><b>From:</b> AWS Marketplace &lt;no-reply@marketplace.aws&gt;"
        "<br><b>Sent:</b> Tuesday, March 31, 2026 9:15 PM<br><b>To:</b> Sales"
        f"<br><b>Subject:</b> {TITLE}</div>{fields}"
    )
    raw = mail("FW: " + TITLE, body, html=True).replace(
        b"From: AWS Marketplace <no-reply@marketplace.aws>",
        b"From: Kim <kim@example.com>",
    )
    view = email_view(raw)
    assert view.forwarded and view.forwarder == "kim@example.com"
    assert view.original_from == "AWS Marketplace <no-reply@marketplace.aws>"
    event = parse_email(raw)
    assert event.agreement_id == AGMT
    assert event.source_id == "robust-1@example.net"
    # 9:15 PM in the forwarder's zone (+0200, from its own Date header)
    assert event.occurred_at == datetime(2026, 3, 31, 19, 15, tzinfo=UTC)


def test_view_of_a_direct_notification() -> None:
    view = email_view(mail(TITLE, plain(LINES)))
    assert view.from_address == "no-reply@marketplace.aws"
    assert view.from_name == "AWS Marketplace"
    assert not view.forwarded and view.forwarder is None
    assert view.subject == TITLE
    assert view.message_id == "robust-1@example.net"


def test_conflicting_repeated_values_are_left_unknown() -> None:
    lines = [*LINES, ("Purchase amount", "USD 99.00"), ("Product ID", PROD)]
    event = parse_email(mail(TITLE, plain(lines)))
    assert event.purchase_amount is None  # two different amounts
    assert event.product_id == PROD  # the same value twice is fine


def test_several_buyer_accounts_leave_the_single_account_null() -> None:
    lines = [("Customer AWS account IDs", "111111111111, 222222222222"), *LINES[2:]]
    event = parse_email(mail(TITLE, plain(lines)))
    assert event.customer_account_id is None
    assert event.customer_account_ids == ("111111111111", "222222222222")


def test_replaced_takes_the_new_agreement_never_the_old_one() -> None:
    old = "agmt-o1d2o3l4d5o6l7d8o9l0d1o2l"
    subject = "An AWS Marketplace agreement has been replaced"
    lines = [("Previous agreement ID", old), ("New agreement ID", AGMT)]
    lines += [("New purchase amount", "USD 5.00"), ("Purchase amount", "USD 4.00")]
    event = parse_email(mail(subject, plain(lines)))
    assert (event.agreement_id, event.previous_agreement_id) == (AGMT, old)
    assert event.purchase_amount is not None
    assert event.purchase_amount.to_json()["amount"] == "5.00"
    only_old = parse_email(mail(subject, plain([("Previous agreement ID", old)])))
    assert only_old.kind is Kind.UNRECOGNIZED


def test_opportunity_id_fills_resale_authorization_only_when_shaped() -> None:
    subject = "Private offer published"
    lines = [("Offer ID", OFFER), ("Opportunity ID", "resaleauthz-abcdefghij12")]
    event = parse_email(mail(subject, plain(lines)))
    assert (
        event.opportunity_id
        == event.resale_authorization_id
        == ("resaleauthz-abcdefghij12")
    )
    event = parse_email(
        mail(subject, plain([("Offer ID", OFFER), ("Opportunity ID", "O77")]))
    )
    assert (event.opportunity_id, event.resale_authorization_id) == ("O77", None)


def test_disbursement_keeps_the_resource_arn() -> None:
    arn = "arn:aws:payments:us-east-1:123456789012:paymentinstrument:pi-0example"
    event = parse_email(mail("Disbursement Paused", f"Resource ARN: {arn}\n"))
    assert event.kind is Kind.DISBURSEMENT_PAUSED
    assert event.resource_arn == arn
    assert event.to_record()["resource_arn"] == arn


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage \x80\x81",
        b"Subject: " + b"A" * 100_000 + b"\n\nbody",
        b"Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain",
        b"From: <<<>>>\nDate: yesterday\nSubject: " + TITLE.encode() + b"\n\n",
    ],
)
def test_bad_input_never_raises(raw: bytes) -> None:
    event = parse_email(raw)
    assert event.kind is Kind.UNRECOGNIZED
    assert event.reason


def test_two_matching_parsers_are_reported_as_ambiguous(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = EMAIL_PARSERS[0]
    twin = type(first)(
        name="offer_accepted_twin",
        kind=first.kind,
        subject=first.subject,
        required=first.required,
    )
    monkeypatch.setattr(parsers, "EMAIL_PARSERS", (*EMAIL_PARSERS, twin))
    event = parse_email(mail(TITLE, plain(LINES)))
    assert event.kind is Kind.UNRECOGNIZED
    assert (
        event.reason
        == "ambiguous: parsers offer_accepted and offer_accepted_twin both match"
    )


def test_markdown_pipe_table_and_dash_separators() -> None:
    rows = "\n".join(f"| {label} | {value} |" for label, value in LINES)
    assert_accepted(mail(TITLE, "| Field | Value |\n|---|---|\n" + rows + "\n"))
    assert_accepted(mail(TITLE, plain(LINES, sep=" - ")))
    two = "\n".join(
        f"| {a} | {x} | {b} | {y} |"
        for (a, x), (b, y) in zip(LINES[::2], LINES[1::2], strict=False)
    )
    assert_accepted(mail(TITLE, two + f"\n| {LINES[-1][0]} | {LINES[-1][1]} |\n"))


def test_html_column_table_with_a_header_row_of_labels() -> None:
    head = "".join(f"<th>{label}</th>" for label, _ in LINES)
    cells = "".join(f"<td>{value}</td>" for _, value in LINES)
    assert_accepted(
        mail(TITLE, f"<table><tr>{head}</tr><tr>{cells}</tr></table>", html=True)
    )


def test_gmail_html_forward() -> None:
    fields = (
        "<table>"
        + "".join(f"<tr><td>{lb}</td><td>{v}</td></tr>" for lb, v in LINES)
        + "</table>"
    )
    body = (
        '<div dir="ltr">FYI<br><div class="gmail_quote"><div>---------- Forwarded '
        "message ---------<br>From: <strong>AWS Marketplace</strong> <span>&lt;"
        '<a href="mailto:no-reply@marketplace.aws">no-reply@marketplace.aws</a>'
        "&gt;</span><br>Date: Tue, Mar 31, 2026 at 9:15 PM<br>Subject: "
        f"{TITLE}<br>To: &lt;sales@example.com&gt;<br></div><br><br>"
        f"{fields}</div></div>"
    )
    raw = mail("Fwd: " + TITLE, body, html=True)
    view = email_view(raw)
    assert view.forwarded and view.original_from is not None
    assert "no-reply@marketplace.aws" in view.original_from
    event = parse_email(raw)
    assert event.kind is Kind.OFFER_ACCEPTED and event.agreement_id == AGMT
    assert event.occurred_at == datetime(2026, 3, 31, 19, 15, tzinfo=UTC)


EXAMPLES = sorted((Path(__file__).parent.parent / "examples" / "inbox").glob("*.eml"))


def test_the_sample_inbox_parses_as_its_file_names_say() -> None:
    kinds = {path.name: parse_email(path.read_bytes()).kind for path in EXAMPLES}
    assert len(kinds) >= 10
    assert kinds["13-buyer-side-acceptance.eml"] is Kind.UNRECOGNIZED
    recognized = [name for name, kind in kinds.items() if kind is not Kind.UNRECOGNIZED]
    assert len(recognized) == len(kinds) - 1
    assert kinds["07-northwind-agreement-replaced.eml"] is Kind.AGREEMENT_REPLACED
    assert kinds["10-disbursement-paused.eml"] is Kind.DISBURSEMENT_PAUSED


@pytest.mark.parametrize(
    ("subject", "kind"),
    [
        ("AWS Marketplace agreement has started", Kind.AGREEMENT_STARTED),
        ("A customer accepted an AWS Marketplace offer", Kind.OFFER_ACCEPTED),
        ("[Action required] Payment failed for an AWS Marketplace agreement",
         Kind.AGREEMENT_PAYMENT_FAILED),
        ("New private offer published", Kind.OFFER_PUBLISHED),
        ("Updated Channel Partner private offer published", Kind.OFFER_PUBLISHED),
        ("Offers: View updated resale authorization",
         Kind.RESALE_AUTHORIZATION_UPDATED),
        ("Offers: View revoked selling authorization",
         Kind.RESALE_AUTHORIZATION_REVOKED),
        ("Your AWS Marketplace disbursements are paused", Kind.DISBURSEMENT_PAUSED),
        ("AWS Marketplace recurring scan results for Acme",
         Kind.SECURITY_SCAN_REPORTED),
    ],
)  # fmt: skip
def test_title_variants_reach_their_kind(subject: str, kind: Kind) -> None:
    arn = "arn:aws:payments:us-east-1:123456789012:paymentinstrument:pi-0example"
    lines = [*LINES, ("Resource ARN", arn), ("ISV", "Acme Software Corp")]
    event = parse_email(mail(subject, plain(lines)))
    assert (event.kind, event.reason) == (kind, None)


def test_a_rule_of_underscores_is_not_a_forward() -> None:
    body = plain(LINES) + "\n" + "_" * 40 + "\nAWS Marketplace team\n"
    raw = mail(TITLE, "Intro\n" + "_" * 40 + "\n" + body)
    view = email_view(raw)
    assert not view.forwarded and view.forwarder is None
    assert_accepted(raw)


def test_undeclared_8bit_latin1_body_is_recovered() -> None:
    body = plain(LINES).replace("Northwind Analytics LLC", "Société Générale")
    raw = mail(TITLE, "").replace(b'; charset="utf-8"', b"") + body.encode("latin-1")
    event = parse_email(raw)
    assert event.customer_name == "Société Générale"
    assert event.agreement_id == AGMT


def test_forward_as_attachment_uses_the_attached_original() -> None:
    inner = (
        mail(TITLE, plain(LINES))
        .decode()
        .replace(
            "Date: Wed, 01 Apr 2026 10:00:00 +0200",
            "Date: Tue, 31 Mar 2026 23:30:00 +0000",
        )
    )
    raw = (
        "From: Dana <dana@example.com>\nSubject: Fwd: " + TITLE + "\n"
        "Date: Wed, 01 Apr 2026 12:00:00 +0000\nMessage-ID: <fw-1@example.com>\n"
        'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="zz"\n\n'
        "--zz\nContent-Type: text/plain\n\nSee attached.\n"
        "--zz\nContent-Type: message/rfc822\n\n" + inner + "\n--zz--\n"
    ).encode()
    view = email_view(raw)
    assert view.forwarded and view.forwarder == "dana@example.com"
    assert view.original_from == "AWS Marketplace <no-reply@marketplace.aws>"
    event = parse_email(raw)
    assert (event.kind, event.agreement_id) == (Kind.OFFER_ACCEPTED, AGMT)
    assert event.source_id == "fw-1@example.com"
    assert event.occurred_at == datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
