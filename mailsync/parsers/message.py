"""The parsed view of one email: headers, body text, forward unwrapping.

`email_view(raw)` is the single place that reads MIME. It uses mail-parser
(the project's MIME library; it decodes RFC 2047 headers, quoted-printable,
base64 and the declared charset, and normalizes `Date` to UTC). The result is
an immutable `EmailView` that parsers and the trust check share.

Inline forwards: when the body holds a forward marker (Gmail's "----------
Forwarded message ---------", Apple Mail's "Begin forwarded message:",
Outlook's "-----Original Message-----", mutt's "----- Forwarded message from
X -----" or a bare "From:/Sent:/Subject:" block), the view's `text` is the
quoted original below the header block, `subject` the original's subject and
`original_date` its date. Lines quoted with `>` are unquoted. The forwarding
message's own sender is `forwarder`. A message forwarded as an attachment
(message/rfc822 part) takes the subject, sender and date from the attached
message's own headers.

Bodies that mail-parser could only decode with replacement characters (8-bit
text declaring no charset) are decoded again as windows-1252. A text/plain
part sent as `format=flowed` (RFC 3676, common in forwards from Thunderbird
and Apple Mail) has its soft line breaks joined again, so a long value
wrapped by the client reads as one line.
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime, timedelta, timezone
from email.message import Message
from typing import Any, NamedTuple

import mailparser

from mailsync import message_id
from mailsync.parsers.htmltext import html_to_text


class EmailView(NamedTuple):
    """What parsers and the trust check need from one message.

    Immutable. A named tuple rather than a frozen dataclass: one is built
    per message, and a tuple is built several times faster.
    """

    subject: str  #: the subject to classify (the original's when forwarded)
    outer_subject: str  #: the received message's own Subject
    from_address: str | None  #: the received message's sender, lower case
    from_name: str | None
    date: datetime | None  #: the received message's Date, UTC
    message_id: str | None  #: without angle brackets
    text: str  #: body text to extract from (text/plain, else HTML as text)
    alt_html: str  #: the HTML part when `text` came from text/plain, else ""
    #: a forward marker with a header block was found, or the subject starts
    #: with "Fwd:"/"FW:" (the sender is then not the notification's author)
    forwarded: bool
    forwarder: str | None  #: sender of the forwarding message when forwarded
    original_from: str | None  #: "From:" of the forward block, as written
    original_date: datetime | None  #: date of the forward block, UTC
    content_type: str  #: top-level MIME type, lower case
    auto_submitted: str  #: Auto-Submitted header, lower case ("" if absent)
    is_reply: bool  #: the outer subject starts with "Re:" (and not "Fwd:")

    @property
    def alt_text(self) -> str:
        """The HTML alternative as text (forward unwrapped), computed on demand:
        most messages never need it, and HTML conversion is the costly step."""
        if not self.alt_html.strip():
            return ""
        text = html_to_text(self.alt_html)
        if self.forwarded:
            original = _unwrap_forward(text)
            text = original[0] if original else text
        return _unquote(text)

    @property
    def occurred_at(self) -> datetime | None:
        """The original's date when the forward block gives one, else `date`."""
        return self.original_date or self.date


_FWD_PREFIX = re.compile(r"^\s*(?:(?:fwd?|fw|tr|wg|rv|enc)\s*:\s*|\[fwd?:?\s*)+", re.I)
_RE_PREFIX = re.compile(r"^\s*(?:re|aw|sv)\s*:", re.I)
# `_MARKERS`, `_OUTLOOK` and `_QUOTE` start at the newline before a line and
# are run over the text with a newline put in front: the regex engine then
# looks at line starts only, not at every position.
# Every run of "quote marks and spaces" stays within one line (`_INLINE`,
# never a newline): a pattern tried at each newline then reads one line, not
# every line below it, and the search is linear in the text (a run of blank
# lines before "From:" once made it quadratic).
_INLINE = r"(?:[^\S\n]|>)*"
_MARKERS = re.compile(
    r"\n" + _INLINE + r"(?:-{2,}[^\S\n]*Forwarded message(?:[^\S\n]+from\s[^\n]*?)?"
    r"[^\S\n]*-{2,}"
    r"|Begin forwarded message:?|-{2,}[^\S\n]*Original Message[^\S\n]*-{2,}"
    r"|-{2,}[^\S\n]*Forwarded by [^\n]*|_{8,})[^\S\n]*$",
    re.I | re.M,
)
# Outlook puts no marker line: the block starts at "From:" and has "Sent:".
_OUTLOOK = re.compile(
    r"\n"
    + _INLINE
    + r"From:[^\n]*\n(?:"
    + _INLINE
    + r"[\w-]+:[^\n]*\n){0,3}?"
    + _INLINE
    + r"(?:Sent|Date):",
    re.I | re.M,
)
_HEADER_LINE = re.compile(
    r"^(From|Sent|Date|Subject|To|Cc|Bcc|Reply-To|Importance)\s*:\s*(.*)$", re.I
)
_QUOTE = re.compile(r"\n(?:[ \t]*>)+[ \t]?")


def email_view(raw: bytes) -> EmailView:
    """Parse `raw` (RFC 5322 bytes). Raises only if mail-parser cannot read it.

    The bytes are first given one kind of line end (`canonical_lines`), the
    form the DKIM check reads too (`mailsync.security.reading`)."""
    return view_of(mailparser.parse_from_bytes(canonical_lines(raw)))


def canonical_lines(raw: bytes) -> bytes:
    """`raw` with one kind of line end and no lone CR: unchanged when every
    line ends in CRLF (IMAP) or every line in LF (most files); otherwise
    every CRLF, lone CR and lone LF becomes LF. The standard library's MIME
    parser reads all three as a line end, dkimpy only CRLF and LF (and reads
    an LF-only message exactly as its CRLF form): on these bytes both read
    the same lines."""
    cr = raw.count(b"\r")
    if not cr:
        return raw  # LF only
    crlf = raw.count(b"\r\n")
    if crlf == cr and crlf == raw.count(b"\n"):
        return raw  # CRLF only
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def view_of(mail: Any) -> EmailView:
    """The view of one message already parsed by mail-parser (its bytes
    canonical, see `canonical_lines`)."""
    message = mail.message
    # mail-parser's own table of the decoded headers (lower-case names; a
    # list when a header repeats): one dictionary look-up each, where
    # `Message.get` scans and lower-cases every header name again.
    fields = mail.mail
    outer_subject = " ".join(_first(fields.get("subject")).split())
    from_name, from_address = _sender(fields.get("from"))
    date = _aware(mail.date)
    plain = "\n".join(str(part) for part in mail.text_plain)
    html = "\n".join(str(part) for part in mail.text_html)
    if "\ufffd" in plain:
        plain = _redecode(message, "text/plain") or plain
    header = _first(fields.get("content-type")) or None
    content_type = _content_type(message, header)
    multipart = message.is_multipart()
    if multipart:
        flowed = _flowed(message)
    elif content_type == "text/plain":  # its only part: `_flowed` without a walk
        flowed = _part_flowed(message, header)
    else:
        flowed = None
    if flowed is not None:
        plain = _unflow(plain, delsp=flowed)
    # `s and not s.isspace()` is `s.strip()` being non-empty, without a copy.
    if plain and not plain.isspace():
        text, alt_html = plain, html
    elif html and not html.isspace():
        text, alt_html = html_to_text(html), ""
    else:
        text, alt_html = "", ""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    original = _unwrap_forward(text)
    # "Fwd:" without a marker (forwarded as an attachment, or a client that
    # pastes the body bare) still means the sender is not the original author.
    prefix = _FWD_PREFIX.match(outer_subject)
    forwarded = original is not None or prefix is not None
    # The prefix regex is anchored: removing its one match is `sub`.
    subject = (outer_subject[prefix.end() :] if prefix else outer_subject).strip()
    original_from = None
    original_date = None
    if original is not None:
        text, block = original
        subject = _FWD_PREFIX.sub("", block.get("subject", "")).strip() or subject
        original_from = block.get("from") or None
        original_date = _block_date(
            block.get("date") or block.get("sent"), message.get("Date")
        )
    attached = _attached_original(message) if multipart else None
    if attached is not None:
        # Forwarded as an attachment: the original's own headers are exact.
        forwarded = True
        subject = _FWD_PREFIX.sub("", " ".join(attached.get("Subject", "").split()))
        subject = subject or _FWD_PREFIX.sub("", outer_subject).strip()
        original_from = str(attached.get("From", "")) or None
        original_date = _block_date(str(attached.get("Date", "")), None)
    found_id = fields.get("message-id")
    message_id = clean_message_id([found_id] if isinstance(found_id, str) else found_id)
    return EmailView(
        subject=subject,
        outer_subject=outer_subject,
        from_address=from_address,
        from_name=from_name,
        date=date,
        message_id=message_id,
        text=_unquote(text),
        alt_html=alt_html,
        forwarded=forwarded,
        forwarder=from_address if forwarded else None,
        original_from=original_from,
        original_date=original_date,
        content_type=content_type.lower(),
        auto_submitted=_first(fields.get("auto-submitted")).strip().lower(),
        is_reply=bool(_RE_PREFIX.match(outer_subject)),
    )


def clean_message_id(values: Any) -> str | None:
    """The Message-ID without angle brackets (`mailsync.message_id.clean`),
    or None. Only a single header counts: several make the message rejected
    (see `mailsync.security.reading`)."""
    if not values or len(values) != 1:
        return None
    return message_id.clean(str(values[0]))


def _unquote(text: str) -> str:
    """`text` without `>` quote marks at line starts (`_QUOTE`).

    Most bodies have no `>` at all, or only inside `<https://...>` links, so
    the `>` characters are looked at first and the regex (and the copy of
    the text it makes) is left out unless one starts a line.
    """
    at = text.find(">")
    while at != -1:
        line_start = text.rfind("\n", 0, at) + 1
        if not text[line_start:at].strip(" \t"):
            return _QUOTE.sub("\n", "\n" + text)[1:]
        at = text.find(">", at + 1)
    return text


def _attached_original(message: Message) -> Message | None:
    """The first message/rfc822 part (a forward as attachment), if any."""
    for part in message.walk():
        # Parsing Content-Type is the costly step; a part whose header does
        # not name rfc822 cannot be one (a part without the header may be:
        # multipart/digest defaults its parts to message/rfc822).
        header = part.get("content-type")
        if header is not None and "rfc822" not in str(header).lower():
            continue
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
    return None


def _flowed(message: Message) -> bool | None:
    """For a `format=flowed` text/plain part: whether it is `DelSp=yes`
    (RFC 3676 section 4.2); None when no text/plain part is flowed."""
    for part in message.walk():
        if part.get_content_type() != "text/plain" or part.is_multipart():
            continue
        flowed = _part_flowed(part, part.get("content-type"))
        if flowed is not None:
            return flowed
    return None


def _content_type(part: Message, header: Any) -> str:
    """`part.get_content_type()`, given `part.get("content-type")`: the
    standard library's steps, without looking the header up again."""
    if header is None:
        return part.get_default_type()
    ctype = str(header).partition(";")[0].strip().lower()
    return ctype if ctype.count("/") == 1 else "text/plain"


def _part_flowed(part: Message, header: Any) -> bool | None:
    """`_flowed` of one text/plain part whose Content-Type is `header`."""
    # `get_param("format")` reads this same header; without the word
    # "format" in it there is no such parameter, and parsing the
    # parameters is the costly step.
    if header is None or "format" not in str(header).lower():
        return None
    if str(part.get_param("format") or "").lower() == "flowed":
        return str(part.get_param("delsp") or "").lower() == "yes"
    return None


def _unflow(text: str, *, delsp: bool) -> str:
    """Undo RFC 3676 soft line breaks: a line ending in a space continues on
    the next line of the same quote depth (the "-- " signature line
    excepted); one leading space of a line is stuffing and is removed."""
    out: list[str] = []
    pending = ""
    pending_depth = -1
    for line in text.replace("\r\n", "\n").split("\n"):
        content = line.lstrip(">")
        depth = len(line) - len(content)
        if content.startswith(" "):
            content = content[1:]
        if pending_depth not in (-1, depth):  # the quote depth changed
            out.append(pending)
            pending, pending_depth = "", -1
        head = pending or (">" * depth + (" " if depth else ""))
        if content.endswith(" ") and content != "-- ":
            pending = head + (content[:-1] if delsp else content)
            pending_depth = depth
            continue
        out.append(head + content)
        pending, pending_depth = "", -1
    if pending:
        out.append(pending)
    return "\n".join(out)


def _redecode(message: Message, content_type: str) -> str | None:
    """The parts of `content_type` decoded again, for bodies mail-parser
    could only decode with replacement characters: 8-bit text that declares
    no charset (or a wrong one) is nearly always windows-1252 in practice, a
    superset of ISO-8859-1."""
    texts = []
    for part in message.walk():
        if part.get_content_type() != content_type or part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        try:
            texts.append(payload.decode(part.get_content_charset() or "utf-8"))
        except (LookupError, UnicodeDecodeError):
            texts.append(payload.decode("cp1252", errors="replace"))
    return "\n".join(texts) if texts else None


def _first(value: Any) -> str:
    """A decoded header from mail-parser's table: its (first) value, or ""."""
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value or "")


def _sender(value: Any) -> tuple[str | None, str | None]:
    if isinstance(value, list) and value:
        name, address = value[0]
        return (str(name) or None), (str(address).strip().lower() or None)
    return None, None


def _aware(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    moment: datetime = value
    if moment.tzinfo is None:  # mail-parser gives UTC; make it explicit
        return moment.replace(tzinfo=UTC, microsecond=0)
    return moment.astimezone(UTC).replace(microsecond=0)


def _unwrap_forward(text: str) -> tuple[str, dict[str, str]] | None:
    """The innermost forwarded original in `text` and its header block."""
    # Every forward marker or header block contains one of these.
    low = text.lower()
    if not (
        "from:" in low
        or "forward" in low
        or "original message" in low
        or "________" in low
    ):
        return None  # the common case, decided without the regexes
    found: tuple[str, dict[str, str]] | None = None
    for _ in range(4):  # a forward of a forward: keep the innermost original
        lined = "\n" + text  # positions in `lined` are one past `text`'s
        marker = _MARKERS.search(lined)
        outlook = _OUTLOOK.search(lined)
        if marker is None and outlook is None:
            break
        if marker is not None and (
            outlook is None or marker.start() <= outlook.start()
        ):
            start = marker.end() - 1
        else:
            assert outlook is not None
            start = outlook.start()  # the newline before the line in `lined`
        body, block = _split_block(_unquote(text[start:]))
        if "from" not in block and "subject" not in block:
            # A separator line with no forwarded header block below it (a
            # rule of underscores in a signature, say): not a forward.
            break
        found = (body, block)
        text = body
    return found


def _split_block(text: str) -> tuple[str, dict[str, str]]:
    """Split the forward's header block (From/Date/Subject/...) from the body."""
    block: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    last = ""
    while i < len(lines):
        line = lines[i].strip()
        if not line:
            if block:  # the blank line after the headers ends the block
                i += 1
                break
            i += 1
            continue
        match = _HEADER_LINE.match(line)
        if match:
            last = match.group(1).lower()
            block.setdefault(last, match.group(2).strip())
        elif block and last == "to" and "@" in line:
            pass  # a wrapped recipient list
        else:
            break
        i += 1
    return "\n".join(lines[i:]), block


_TZ_NAMES = {
    "UTC": 0, "GMT": 0, "Z": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5,
    "MST": -7, "MDT": -6, "PST": -8, "PDT": -7, "CET": 1, "CEST": 2,
    "BST": 1, "IST": 5.5, "JST": 9,
}  # fmt: skip
_LOOSE_DATE = re.compile(
    r"(?:(?P<mon1>[A-Za-z]{3,9})\.?\s+(?P<d1>\d{1,2}),?|(?P<d2>\d{1,2})\s+(?P<mon2>[A-Za-z]{3,9})\.?,?)"
    r"\s+(?P<y>\d{4}),?\s*(?:at\s+)?(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?"
    r"\s*(?P<ampm>[AaPp]\.?[Mm]\.?)?"
    # Apple Mail writes zones without an abbreviation as "GMT+9" / "GMT+5:30"
    r"\s*(?P<tz>(?:GMT|UTC)[+-]\d{1,2}(?::?\d{2})?|[A-Z]{1,4}|[+-]\d{2}:?\d{2})?"
)
_MONTHS = (
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "oct",
    "nov",
    "dec",
)


def _block_date(value: str | None, outer_raw_date: Any) -> datetime | None:
    """The forward block's date in UTC.

    RFC 5322 dates carry their offset. Mail clients' forward headers
    ("Tue, Mar 3, 2026 at 2:07 PM") often do not; those are read in the
    offset of the forwarding message's own Date header, which the same client
    wrote in the same local time zone, else as UTC.
    """
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC).replace(microsecond=0)
    except (TypeError, ValueError, IndexError):
        pass
    match = _LOOSE_DATE.search(value)
    if match is None:
        return None
    mon = (match.group("mon1") or match.group("mon2") or "")[:3].lower()
    if mon not in _MONTHS:
        return None
    hour = int(match.group("h"))
    ampm = (match.group("ampm") or "").lower().replace(".", "")
    if ampm == "pm" and hour < 12:
        hour += 12
    elif ampm == "am" and hour == 12:
        hour = 0
    tz = _tz(match.group("tz"), outer_raw_date)
    try:
        local = datetime(
            int(match.group("y")),
            _MONTHS.index(mon) + 1,
            int(match.group("d1") or match.group("d2")),
            hour,
            int(match.group("mi")),
            int(match.group("s") or 0),
            tzinfo=tz,
        )
    except ValueError:
        return None
    return local.astimezone(UTC)


def _tz(name: str | None, outer_raw_date: Any) -> timezone:
    if name:
        if name in _TZ_NAMES:
            return timezone(timedelta(hours=_TZ_NAMES[name]))
        offset = re.fullmatch(r"(?:GMT|UTC)?([+-])(\d{1,2}):?(\d{2})?", name)
        if offset:
            sign = -1 if offset.group(1) == "-" else 1
            minutes = int(offset.group(2)) * 60 + int(offset.group(3) or 0)
            return timezone(sign * timedelta(minutes=minutes))
    if outer_raw_date:
        try:
            outer = email.utils.parsedate_to_datetime(str(outer_raw_date))
            if outer.tzinfo is not None:
                delta = outer.utcoffset() or timedelta(0)
                return timezone(delta)
        except (TypeError, ValueError, IndexError):
            pass
    return UTC
