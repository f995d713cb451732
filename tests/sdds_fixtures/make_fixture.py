"""Writes tests/sdds_fixtures/basic/ (the feed files and deliveries.json).

The rows are written by hand from the reference (seller-data-feeds.md); the
expected values in basic/expected.json are computed by hand from its rules,
not by mailsync. Run: python tests/sdds_fixtures/make_fixture.py
"""

import csv
import json
from pathlib import Path

OUT = Path(__file__).parent / "basic" / "bucket"

BILLING_HEADER = (
    "billing_event_id,from_account_id,to_account_id,end_user_account_id,product_id,"
    "action,transaction_type,parent_billing_event_id,disbursement_billing_event_id,"
    "amount,currency,balance_impacting,invoice_date,payment_due_date,"
    "usage_period_start_date,usage_period_end_date,invoice_id,billing_address_id,"
    "transaction_reference_id,bank_trace_id,broker_id,agreement_id,"
    "buyer_transaction_reference_id,valid_from,insert_date,update_date,delete_date"
).split(",")

P = "prod-kq3v7x2m9wz4a"


def bill(
    id,
    frm,
    to,
    action,
    ttype,
    amount,
    inv,
    idate,
    due,
    tref,
    broker,
    agmt,
    bref,
    ts,
    disb="",
    bi="1",
    upd=None,
    deleted="",
):
    return {
        "billing_event_id": id,
        "from_account_id": frm,
        "to_account_id": to,
        "end_user_account_id": frm if frm != "AWS" else "",
        "product_id": P,
        "action": action,
        "transaction_type": ttype,
        "parent_billing_event_id": "",
        "disbursement_billing_event_id": disb,
        "amount": amount,
        "currency": "USD",
        "balance_impacting": bi,
        "invoice_date": idate,
        "payment_due_date": due,
        "usage_period_start_date": idate,
        "usage_period_end_date": idate,
        "invoice_id": inv,
        "billing_address_id": "addr-1",
        "transaction_reference_id": tref,
        "bank_trace_id": "",
        "broker_id": broker,
        "agreement_id": agmt,
        "buyer_transaction_reference_id": bref,
        "valid_from": ts,
        "insert_date": ts,
        "update_date": upd or ts,
        "delete_date": deleted,
    }


S = "acct-guid-seller"
B1 = "acct-guid-buyer1"
B2 = "acct-guid-buyer2"
PAY2 = "acct-guid-payer2"
D1 = "2026-01-10T00:04:07Z"
D2 = "2026-01-12 11:31:47.0"
D3 = "2026-02-01T00:00:00Z"
D4 = "2026-02-15T00:00:00Z"
D5 = "2026-02-17T00:00:00Z"
D6 = "2026-03-02T00:00:00Z"

I1 = ("inv-1001", "2026-01-10T00:00:00Z", "2026-02-09T00:00:00Z", "TR-1001")
I3 = ("inv-1003", "2026-01-05T00:00:00Z", "2026-02-04T00:00:00Z", "TR-1003")
I5 = ("inv-1005", "2026-01-15T00:00:00Z", "2026-01-20T00:00:00Z", "TR-1005")
I2 = ("inv-1002", "2026-02-01T00:00:00Z", "2026-03-03T00:00:00Z")


def inv1(id, ttype, amount, ts, **kw):
    i, d, due, t = I1
    frm, to = (B1, S) if not ttype.startswith("AWS") else (S, "AWS")
    if ttype == "AWS_TAX_SHARE":
        frm, to = B1, "AWS"
    return bill(
        id,
        frm,
        to,
        "INVOICED",
        ttype,
        amount,
        i,
        d,
        due,
        t,
        "AWS_INC",
        "agmt-alpha",
        t,
        ts,
        **kw,
    )


def inv3(id, ttype, amount, ts, **kw):
    i, d, due, t = I3
    frm, to = (PAY2, S) if not ttype.startswith("AWS") else (S, "AWS")
    return bill(
        id,
        frm,
        to,
        "INVOICED",
        ttype,
        amount,
        i,
        d,
        due,
        t,
        "AWS_INC",
        "agmt-bravo",
        t,
        ts,
        **kw,
    )


def disbursed(id, ttype, amount, line, disb, ts):
    i, d, due, t, agmt = line
    return bill(
        id,
        "AWS" if amount.startswith("-") else S,
        S,
        "DISBURSED",
        ttype,
        amount,
        i,
        d,
        due,
        t,
        "AWS_INC",
        agmt,
        t,
        ts,
        disb=disb,
        bi="0",
    )


L1 = (*I1, "agmt-alpha")
L3 = (*I3, "agmt-bravo")


def event(id, ttype, amount, when, ts):
    return bill(
        id,
        "AWS",
        S,
        "DISBURSED",
        ttype,
        amount,
        "",
        when,
        "",
        "DTR-" + id,
        "AWS_INC",
        "",
        "",
        ts,
    )


jan_day1 = [
    inv1("be-0001", "SELLER_REV_SHARE", "900", D1),  # corrected on day 2
    inv1("be-0002", "AWS_REV_SHARE", "-30.000000", D1),
    inv1("be-0003", "SELLER_TAX_SHARE", "80", D1),
    inv1("be-0004", "AWS_TAX_SHARE", "50", D1, bi="0"),
    inv3("be-0020", "SELLER_REV_SHARE", "500", D1),
    inv3("be-0021", "AWS_REV_SHARE", "-15", D1),
    bill(
        "be-0030",
        B2,
        S,
        "INVOICED",
        "SELLER_REV_SHARE",
        "999",
        I5[0],
        I5[1],
        I5[2],
        I5[3],
        "AWS_INC",
        "agmt-delta",
        I5[3],
        D1,
    ),  # deleted on day 2
    bill(
        "be-0031",
        B2,
        S,
        "INVOICED",
        "SELLER_REV_SHARE",
        "100",
        I5[0],
        I5[1],
        I5[2],
        I5[3],
        "AWS_INC",
        "agmt-delta",
        I5[3],
        D1,
    ),
    # an agreement the agreements feed does not know: skipped
    bill(
        "be-0090",
        B2,
        S,
        "INVOICED",
        "SELLER_REV_SHARE",
        "77",
        "inv-1090",
        I5[1],
        I5[2],
        "TR-1090",
        "AWS_INC",
        "agmt-unknown",
        "TR-1090",
        D1,
    ),
]
jan_day2 = [
    inv1("be-0001", "SELLER_REV_SHARE", "1000", D1, upd=D2),
    bill(
        "be-0030",
        B2,
        S,
        "INVOICED",
        "SELLER_REV_SHARE",
        "999",
        I5[0],
        I5[1],
        I5[2],
        I5[3],
        "AWS_INC",
        "agmt-delta",
        I5[3],
        D1,
        upd=D2,
        deleted=D2,
    ),
    inv3("be-0022", "SELLER_REV_SHARE_REFUND", "-200", D2),
    inv3("be-0023", "AWS_REV_SHARE_REFUND", "6", D2),
]
i2, d2, due2 = I2
feb_day1 = [
    # one buyer invoice, two agreements; AWS_EUROPE bills the listing fee on a
    # separate seller invoice (other transaction reference, same buyer one)
    bill(
        "be-0040",
        B1,
        S,
        "INVOICED",
        "SELLER_REV_SHARE",
        "400",
        i2,
        d2,
        due2,
        "TR-1002",
        "AWS_EUROPE",
        "agmt-alpha",
        "TR-1002",
        D3,
    ),
    bill(
        "be-0041",
        S,
        "AWS",
        "INVOICED",
        "AWS_REV_SHARE",
        "-12",
        "sinv-2002",
        d2,
        "2026-03-10T00:00:00Z",
        "TR-S2002",
        "AWS_EUROPE",
        "agmt-alpha",
        "TR-1002",
        D3,
    ),
    bill(
        "be-0042",
        B1,
        S,
        "INVOICED",
        "SELLER_REV_SHARE",
        "250.00",
        i2,
        d2,
        due2,
        "TR-1002B",
        "AWS_EUROPE",
        "agmt-delta",
        "TR-1002B",
        D3,
    ),
    bill(
        "be-0043",
        S,
        "AWS",
        "INVOICED",
        "AWS_REV_SHARE",
        "-7.5",
        "sinv-2002",
        d2,
        "2026-03-10T00:00:00Z",
        "TR-S2002",
        "AWS_EUROPE",
        "agmt-delta",
        "TR-1002B",
        D3,
    ),
]
feb_day2 = [
    # disbursement of invoice 1001 that fails two days later
    event("dis-0001", "DISBURSEMENT", "1050", "2026-02-15T00:00:00Z", D4),
    disbursed("be-0050", "SELLER_REV_SHARE", "-1000", L1, "dis-0001", D4),
    disbursed("be-0051", "AWS_REV_SHARE", "30", L1, "dis-0001", D4),
    disbursed("be-0052", "SELLER_TAX_SHARE", "-80", L1, "dis-0001", D4),
]
feb_day3 = [
    event("dis-0002", "DISBURSEMENT_FAILURE", "-1050", "2026-02-17T00:00:00Z", D5),
    disbursed("be-0053", "SELLER_REV_SHARE", "1000", L1, "dis-0002", D5),
    disbursed("be-0054", "AWS_REV_SHARE", "-30", L1, "dis-0002", D5),
    disbursed("be-0055", "SELLER_TAX_SHARE", "80", L1, "dis-0002", D5),
]
mar_day1 = [
    event("dis-0003", "DISBURSEMENT", "1244", "2026-03-01T00:00:00Z", D6),
    disbursed("be-0060", "SELLER_REV_SHARE", "-1000", L1, "dis-0003", D6),
    disbursed("be-0061", "AWS_REV_SHARE", "30", L1, "dis-0003", D6),
    disbursed("be-0062", "SELLER_TAX_SHARE", "-80", L1, "dis-0003", D6),
    # invoice 1003 only partly paid out
    disbursed("be-0063", "SELLER_REV_SHARE", "-200", L3, "dis-0003", D6),
    disbursed("be-0064", "AWS_REV_SHARE", "6", L3, "dis-0003", D6),
]

AGR_HEADER = (
    "agreement_id,valid_from,insert_date,update_date,delete_date,status,"
    "estimated_agreement_value,currency_code,proposer_account_id,"
    "acceptor_account_id,offer_id,offer_revision_at_acceptance,start_time,"
    "end_time,acceptancet_time,intent,preceding_agreement_id,status_reason_code,"
    "term_configuration"
).split(",")


def agr(
    id, vf, status, value, acceptor, offer, start, end, accepted, upd=None, preceding=""
):
    return {
        "agreement_id": id,
        "valid_from": vf,
        "insert_date": vf,
        "update_date": upd or vf,
        "delete_date": "",
        "status": status,
        "estimated_agreement_value": value,
        "currency_code": "USD" if value else "",
        "proposer_account_id": S,
        "acceptor_account_id": acceptor,
        "offer_id": offer,
        "offer_revision_at_acceptance": "1",
        "start_time": start,
        "end_time": end,
        "acceptancet_time": accepted,
        "intent": "NEW",
        "preceding_agreement_id": preceding,
        "status_reason_code": "",
        "term_configuration": '{"selectorValue":"P12M","dimensions":[{"a":1,"b":2}]}',
    }


agr_jan = [
    agr(
        "agmt-alpha",
        "2026-01-01T10:00:00Z",
        "ACTIVE",
        "12000",
        B1,
        "offer-alpha",
        "2026-01-01T00:00:00Z",
        "2026-12-31T23:59:59Z",
        "2026-01-01T09:58:00Z",
    ),
    agr(
        "agmt-bravo",
        "2026-01-04T10:00:00Z",
        "ACTIVE",
        "6000.000000",
        B2,
        "offer-bravo",
        "2026-01-04T00:00:00Z",
        "2027-01-03T23:59:59Z",
        "2026-01-04T09:00:00Z",
    ),
    agr(
        "agmt-charlie",
        "2026-01-08T10:00:00Z",
        "ACTIVE",
        "",
        B1,
        "offer-charlie",
        "2026-01-08 00:00:00.0",
        "9999-01-01 00:00:00.0",
        "2026-01-08 09:00:00.0",
    ),
    agr(
        "agmt-delta",
        "2026-01-09T10:00:00Z",
        "ACTIVE",
        "3600",
        B2,
        "offer-delta",
        "2026-01-09T00:00:00Z",
        "2027-01-08T23:59:59Z",
        "2026-01-09T09:00:00Z",
    ),
]
agr_feb = [
    agr(
        "agmt-bravo",
        "2026-02-10T08:00:00Z",
        "CANCELLED",
        "6000.000000",
        B2,
        "offer-bravo",
        "2026-01-04T00:00:00Z",
        "2026-02-10T08:00:00Z",
        "2026-01-04T09:00:00Z",
    ),
]

ACC_HEADER = (
    "account_id,aws_account_id,encrypted_account_id,mailing_address_id,"
    "tax_address_id,tax_registration_number,tax_legal_name,valid_from,"
    "insert_date,update_date,delete_date"
).split(",")


def acc(guid, number, name):
    return {
        "account_id": guid,
        "aws_account_id": number,
        "encrypted_account_id": "x",
        "mailing_address_id": "",
        "tax_address_id": "",
        "tax_registration_number": "",
        "tax_legal_name": name,
        "valid_from": "2020-01-01T00:00:00Z",
        "insert_date": "2020-01-01T00:00:00Z",
        "update_date": "2020-01-01T00:00:00Z",
        "delete_date": "",
    }


accounts = [
    acc(S, "111122223333", "Example Seller, Inc."),
    acc(B1, "210987654321", "Northwind Traders"),
    acc(B2, "12345678901", "Contoso, Ltd."),  # leading zero lost upstream
    acc(PAY2, "333344445555", "Contoso Holdings"),
]

FILES = {
    "billingeventfeed_v1/year=2026/month=01/data.csv": (
        BILLING_HEADER,
        [jan_day1, jan_day2],
    ),
    "billingeventfeed_v1/year=2026/month=02/data.csv": (
        BILLING_HEADER,
        [[], [], feb_day1, feb_day2, feb_day3],
    ),
    "billingeventfeed_v1/year=2026/month=03/data.csv": (
        BILLING_HEADER,
        [[], [], [], [], [], mar_day1],
    ),
    "agreementfeed_v1/year=2026/month=01/data.csv": (AGR_HEADER, [agr_jan]),
    "agreementfeed_v1/year=2026/month=02/data.csv": (AGR_HEADER, [[], [], agr_feb]),
    "accountfeed_v1/year=2026/month=01/data.csv": (ACC_HEADER, [accounts]),
    "accountfeed_v1/year=2026/month=02/data.csv": (ACC_HEADER, [[], [], []]),
}
DAYS = 6


def main() -> None:
    deliveries = [{} for _ in range(DAYS)]
    for key, (header, days) in FILES.items():
        path = OUT / key
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = []
        for day in range(DAYS):
            if day < len(days):
                rows += days[day]
                deliveries[day][key] = len(rows)
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, header, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    (OUT.parent / "deliveries.json").write_text(json.dumps(deliveries, indent=1) + "\n")


if __name__ == "__main__":
    main()
