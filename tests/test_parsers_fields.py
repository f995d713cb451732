"""Label/value extraction and HTML-to-text: lenient about layout."""

from __future__ import annotations

from mailsync.parsers.fields import extract
from mailsync.parsers.htmltext import html_to_text


def test_same_line_next_line_and_several_pairs_per_line() -> None:
    text = (
        "Agreement ID: agmt-aaaaaaaaaaaaaaaaaaaaaaaaa\n"
        "Product name: Acme Data Guard   Product ID: prod-bbbbbbbbbbbbb\n"
        "Offer ID:\n\noffer-ccccccccccccc\n"
        "CUSTOMER   AWS ACCOUNT ID : 210987654321\n"
    )
    found = extract(text)
    assert found["agreement_id"] == ["agmt-aaaaaaaaaaaaaaaaaaaaaaaaa"]
    assert found["product_name"] == ["Acme Data Guard"]
    assert found["product_id"] == ["prod-bbbbbbbbbbbbb"]
    assert found["offer_id"] == ["offer-ccccccccccccc"]
    assert found["customer_accounts"] == ["210987654321"]


def test_label_alone_on_its_line_takes_the_next_line() -> None:
    found = extract("Agreement ID\nagmt-aaaaaaaaaaaaaaaaaaaaaaaaa\nProduct name\nX\n")
    assert found == {
        "agreement_id": ["agmt-aaaaaaaaaaaaaaaaaaaaaaaaa"],
        "product_name": ["X"],
    }


def test_a_label_is_never_the_value_of_the_label_before_it() -> None:
    found = extract("Offer name:\nOffer ID: offer-ccccccccccccc\n")
    assert "offer_name" not in found
    assert found["offer_id"] == ["offer-ccccccccccccc"]


def test_tabs_nbsp_bullets_quotes_and_markdown_bold() -> None:
    text = (
        "Agreement\u00a0ID\tagmt-aaaaaaaaaaaaaaaaaaaaaaaaa\n"
        "  * Product name: Acme\n"
        "> > Offer ID: offer-ccccccccccccc\n"
        "**Margin**: USD 10.00\n"
        "• ISV name: Acme Software Corp\n"
    )
    found = extract(text)
    assert found["agreement_id"] == ["agmt-aaaaaaaaaaaaaaaaaaaaaaaaa"]
    assert found["product_name"] == ["Acme"]
    assert found["offer_id"] == ["offer-ccccccccccccc"]
    assert found["margin"] == ["USD 10.00"]
    assert found["isv_name"] == ["Acme Software Corp"]


def test_longest_label_wins_and_plural_accounts_continue_over_lines() -> None:
    text = (
        "Customer company name: Northwind\n"
        "ISV AWS account ID: 123456789012\n"
        "Customer AWS account ID(s):\n111111111111,\n222222222222\n"
        "Product ID: prod-bbbbbbbbbbbbb\n"
    )
    found = extract(text)
    assert found["customer_name"] == ["Northwind"]
    assert found["isv_account_id"] == ["123456789012"]
    assert "isv_name" not in found
    assert found["customer_accounts"] == ["111111111111, 222222222222"]


def test_prose_mentioning_a_label_is_not_a_value() -> None:
    found = extract(
        "Your channel partner private offer is live.\nSee the margin table.\n"
    )
    assert found == {}


def test_html_tables_bold_labels_and_layout_tables() -> None:
    html = (
        "<html><head><style>p{}</style></head><body><table><tr><td>"
        "<table><tr><th>Agreement&nbsp;ID</th><td>agmt-a</td></tr>"
        "<tr><td>Product name:</td><td>Foo &amp; Bar</td>"
        "<td>Product ID</td><td>prod-x</td></tr></table>"
        "</td></tr></table><p><b>Offer ID:</b> offer-1</p>Hello<br>World"
        "<script>var x = 'Agreement ID: nope';</script></body></html>"
    )
    assert html_to_text(html).splitlines() == [
        "Agreement ID: agmt-a",
        "Product name: Foo & Bar   Product ID: prod-x",
        "Offer ID: offer-1",
        "Hello",
        "World",
    ]


def test_html_vertical_layout_and_malformed_markup() -> None:
    html = "<div>Agreement ID</div><div>agmt-a<div><tr><td>unclosed"
    assert html_to_text(html).splitlines() == ["Agreement ID", "agmt-a", "unclosed"]


def test_a_bracketed_currency_after_a_label_applies_to_its_value() -> None:
    found = extract("Wholesale price (USD): 270,000.00\nMargin (EUR)\n12.00\n")
    assert found == {"wholesale_price": ["USD 270,000.00"], "margin": ["EUR 12.00"]}
    assert "product_name" not in extract("Product name (new): X\n")


def test_pipes_dashes_and_two_pairs_in_a_pipe_row() -> None:
    found = extract(
        "| Product name | Acme | Product ID | prod-bbbbbbbbbbbbb |\n"
        "Offer ID - offer-ccccccccccccc\n"
    )
    assert found == {
        "product_name": ["Acme"],
        "product_id": ["prod-bbbbbbbbbbbbb"],
        "offer_id": ["offer-ccccccccccccc"],
    }
