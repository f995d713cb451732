"""One reading of an email, shared by the DKIM check and every parser.

`read_email(raw) -> Reading` is the entrance every email goes through before
anything is decided about it (the pipeline's parse worker, `quarantine
retry`, `replay`; `parse` reads through `email_view`, which canonicalizes the
same way):

- Line ends are canonicalized once (`canonical_lines`: a message with mixed
  line ends or a lone CR gets LF line ends throughout). dkimpy reads CRLF
  and LF as line ends, the standard library's MIME parser also a lone CR; on
  the canonical bytes both read the same lines, and the DKIM verdict is
  computed on exactly the bytes the view is parsed from.
- A header block holding a lone CR is refused outright (`problem`): RFC 5322
  section 2.2 allows CR only as part of CRLF, and such a block is the one
  place where a genuine signature and a smuggled header block can coexist
  (an unsigned field `X: a<CR>Subject: ...<CR><CR>forged body`).
- The header block must read the same to both readers: each line a field
  (`name:`), a continuation, or the mbox `From ` line on top; the list of
  field names the MIME parser found must equal that list.
- RFC 5322 section 3.6 allows one From, Date, Message-ID, Subject, To and Cc,
  and a MIME part one Content-Type, Content-Transfer-Encoding and
  MIME-Version (RFC 2045). A repeated one lets an unsigned copy stand beside
  the signed one (RFC 6376 section 8.15): the message is refused with the
  field named.

`Reading.view` is the parsed `EmailView` (None when mail-parser could not
read the message, `unreadable` says why), `message` the standard library
message it was built from.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from email.message import Message

import mailparser

from mailsync.parsers.message import EmailView, canonical_lines, view_of

#: fields a message (its top-level header block) may carry at most once
SINGLETONS = (
    "from",
    "date",
    "message-id",
    "subject",
    "to",
    "cc",
    "content-type",
    "content-transfer-encoding",
    "mime-version",
)
_NAMES = {
    "from": "From",
    "date": "Date",
    "message-id": "Message-ID",
    "subject": "Subject",
    "to": "To",
    "cc": "Cc",
    "content-type": "Content-Type",
    "content-transfer-encoding": "Content-Transfer-Encoding",
    "mime-version": "MIME-Version",
}
#: the end of the header block as dkimpy reads the raw bytes (CRLF or LF)
_RAW_HEADER_END = re.compile(rb"\r?\n\r?\n")
_LONE_CR = re.compile(rb"\r(?!\n)")
#: a field name (RFC 5322 3.6.8: printable ASCII but the colon) and its colon
_FIELD = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")


@dataclass(frozen=True)
class Reading:
    """The one reading of a message (see the module docstring)."""

    canonical: bytes  #: one kind of line end, no lone CR; DKIM verifies these
    view: EmailView | None
    message: Message | None  #: what `view` was parsed from
    unreadable: str | None = None  #: why there is no view
    problem: str | None = None  #: why the message must be refused, if it must


def read_email(raw: bytes) -> Reading:
    """The one reading of `raw`; never raises."""
    canonical = canonical_lines(raw)
    problem = _lone_cr(raw)
    names, structure = _field_names(canonical)
    try:
        mail = mailparser.parse_from_bytes(canonical)
        view = view_of(mail)
    except Exception as exc:  # mail-parser on hostile bytes
        return Reading(
            canonical, None, None, f"unreadable message: {type(exc).__name__}", problem
        )
    message: Message = mail.message
    if problem is None:
        problem = structure
    if problem is None and [k.lower() for k in message.keys()] != names:
        problem = (
            "the header block reads differently to the DKIM verifier and the "
            "MIME parser"
        )
    if problem is None:
        problem = _repeated(names)
    return Reading(canonical, view, message, None, problem)


def _lone_cr(raw: bytes) -> str | None:
    end = _RAW_HEADER_END.search(raw)
    found = _LONE_CR.search(raw, 0, end.start() if end else len(raw))
    if found is None:
        return None
    return (
        "header block holds a bare CR (RFC 5322 2.2 allows CR only before LF): "
        "the message reads two ways"
    )


def _field_names(canonical: bytes) -> tuple[list[str], str | None]:
    """Lower-case field names of the header block, and what is wrong with it."""
    if canonical.startswith((b"\r\n", b"\n")):
        return [], None
    end = _RAW_HEADER_END.search(canonical)  # CRLF or LF only, see above
    head = canonical[: end.start() if end else len(canonical)]
    names: list[str] = []
    for n, line in enumerate(head.replace(b"\r\n", b"\n").split(b"\n")):
        if line[:1] in (b" ", b"\t"):
            if not names:
                return names, "the header block starts with a continuation line"
            continue
        found = _FIELD.match(line)
        if found is not None:
            names.append(found.group()[:-1].decode("ascii").lower())
        elif n == 0 and line.startswith(b"From "):
            continue  # an mbox envelope line, not a field
        else:
            return names, (
                f"header line {n + 1} is neither a field nor a continuation "
                "(RFC 5322 2.2)"
            )
    return names, None


def _repeated(names: list[str]) -> str | None:
    counts = Counter(names)
    for name in SINGLETONS:
        if counts[name] > 1:
            return (
                f"message has {counts[name]} {_NAMES[name]} headers "
                "(RFC 5322 allows one)"
            )
    return None
