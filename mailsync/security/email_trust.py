"""Email authenticity: DKIM and sender policy for recognized Marketplace mail.

`decide(reading, event, settings)` returns `event` with `trust` set, judged
on the one reading of the message (`mailsync.security.reading`) the event
was parsed from; `check_email(raw, event, settings)` makes that reading
first. The daemon calls `decide` through `email_gate.evaluate_email`.

- Unrecognized events pass through untouched (they never reach the CRM).
- A message the reading refuses (a bare CR in the header block, a repeated
  From/Date/Message-ID/...) is rejected with that reason.
- The message must have exactly one From address, in a domain of
  `[security] allowed_sender_domains` (equal or a subdomain); otherwise it is
  rejected ("sender evil.example is not an allowed sender domain").
- `verified` needs a DKIM signature (RFC 6376) that verifies and whose `d=` is
  *aligned*: `d=` and the From domain both lie under the same allowed domain
  (DMARC relaxed alignment, RFC 7489 3.1.1, with the allowed domains standing
  in for organizational domains). With `require_dkim = true` (the default) a
  message without such a signature is rejected with the reason ("DKIM
  signature missing", "DKIM fails: body hash mismatch (d=..., s=...)", ...);
  with `require_dkim = false` it is `unverified`. A signature counts only if
  its `h=` covers From, Subject, Date and Message-ID (and Content-Type when
  present) and no `l=` leaves part of the body unsigned
  (`dkim_check.verify_signatures`).
- `[security] expected_recipients`: when set, a verified message must name
  one of them in a signed To/Cc (an unverified one in its To/Cc).
- An `Authentication-Results` header is never consulted: anyone can write one.
- Inline-forwarded mail (as the parsers' `email_view` reads it) from outside
  the allowed domains cannot carry the original's signature. With
  `[security] forwarded = "reject"` (default) it is rejected. With
  `"accept_unverified"` it is accepted as `unverified` when the forwarding
  message's From is listed in `internal_forwarders` (an address, or a domain
  covering its subdomains) and, if `require_dkim = true`, the forwarding
  message itself carries a passing DKIM signature aligned with its From
  domain; anything else is rejected.
- DNS unavailable (timeout, SERVFAIL) while no aligned signature passed:
  `TransientError`, so the message stays pending and is checked again later
  instead of being rejected for good.
"""

from __future__ import annotations

import email.utils
import functools
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from mailsync.config import SecuritySettings
from mailsync.errors import TransientError
from mailsync.event import Event, Trust
from mailsync.security.dkim_check import (
    DnsFunc,
    Signature,
    resolver_dnsfunc,
    verify_signatures,
)
from mailsync.security.reading import Reading, read_email

_FORWARD_SUBJECT = re.compile(r"\s*(?:fwd?|fw)\s*:", re.IGNORECASE)


@dataclass(frozen=True)
class _Envelope:
    """What the trust check needs from the outer message."""

    sender: str | None  #: the single From address, lower-case
    problem: str | None  #: why there is no single sender
    subject: str


def check_email(
    raw: bytes,
    event: Event,
    settings: SecuritySettings,
    *,
    dnsfunc: DnsFunc | None = None,
) -> Event:
    """Return `event` with `trust` set from the message's authenticity.

    A recognized event that fails a configured check comes back with
    `trust = rejected` and a one-line reason; it must never reach the CRM.
    Raise `TransientError` when DNS is unavailable and the outcome depends
    on it. (`decide` does the same on a `Reading` already made.)
    """
    return decide(read_email(raw), event, settings, dnsfunc=dnsfunc)


def decide(
    reading: Reading,
    event: Event,
    settings: SecuritySettings,
    *,
    dnsfunc: DnsFunc | None = None,
    deadline: float | None = None,
) -> Event:
    """`check_email` on the one reading of the message the event came from.

    `deadline` (a `time.monotonic()` value) bounds the DNS look-ups: a key
    that cannot be fetched before it is `TransientError`, so a slow DNS
    server never makes the parse worker overrun its time cap.
    """
    if not event.recognized or event.trust is Trust.REJECTED:
        return event
    if reading.problem is not None:
        return event.rejected(reading.problem)
    env = _envelope(reading)
    if env.sender is None:
        return event.rejected(env.problem or "no From address")
    lookup = dnsfunc or _default_dnsfunc(settings.dns_servers, settings.dns_timeout)
    timeout = _timeout(settings.dns_timeout, deadline)
    sender_domain = _domain(env.sender)
    if _allowed_base(sender_domain, settings.allowed_sender_domains) is None:
        # Mail from an allowed domain is judged by its own signature whatever
        # its body quotes; only mail from elsewhere can be an inline forward.
        forwarded = reading.view.forwarded if reading.view is not None else False
        if forwarded or _FORWARD_SUBJECT.match(env.subject):
            return _check_forwarded(
                reading, event, settings, env.sender, lookup, timeout
            )
        return event.rejected(
            f"sender {sender_domain} is not an allowed sender domain "
            "([security] allowed_sender_domains)"
        )

    def aligned(d: str) -> bool:
        return _aligned(d, sender_domain, settings.allowed_sender_domains)

    results = verify_signatures(
        reading.canonical, lookup, wanted=aligned, timeout=timeout
    )
    passing = next((r for r in results if r.passed), None)
    if passing is not None:
        unbound = _recipient_problem(reading, passing.signed, settings)
        if unbound is not None:
            return event.rejected(unbound)
        return event.replace(trust=Trust.VERIFIED)
    if not settings.require_dkim:
        unbound = _recipient_problem(reading, None, settings)
        if unbound is not None:
            return event.rejected(unbound)
        return event.replace(trust=Trust.UNVERIFIED)
    return event.rejected(_dkim_reason(results, sender_domain, settings))


def _timeout(dns_timeout: float, deadline: float | None) -> float:
    """The DNS timeout, shortened to what is left before `deadline`."""
    if deadline is None:
        return dns_timeout
    left = deadline - time.monotonic()
    if left <= 0.2:
        raise TransientError(
            "DKIM key look-up: no time left within [security] parse_timeout_seconds"
        )
    return min(dns_timeout, left)


def _recipient_problem(
    reading: Reading, signed: frozenset[str] | None, settings: SecuritySettings
) -> str | None:
    """Why the message is not addressed to `[security] expected_recipients`
    (None when it is, or when no recipients are configured). A verified
    message counts only its signed To/Cc (`signed`: the passing signature's
    h=); an unverified one (require_dkim = false) its To/Cc as written."""
    wanted = settings.expected_recipients
    if not wanted:
        return None
    message = reading.message
    if message is None:
        return "recipient binding: the message has no readable To/Cc"
    fields = [f for f in ("to", "cc") if signed is None or f in signed]
    values: list[str] = []
    for name in fields:
        values.extend(str(v) for v in (message.get_all(name) or []))
    for _, address in email.utils.getaddresses(values):
        address = address.strip().lower()
        if "@" in address and _listed(address, wanted):
            return None
    where = "signed To/Cc" if signed is not None else "To/Cc"
    return (
        f"recipient binding: the {where} names none of [security] "
        "expected_recipients (a notification sent to another account)"
    )


def _check_forwarded(
    reading: Reading,
    event: Event,
    settings: SecuritySettings,
    forwarder: str,
    lookup: DnsFunc,
    timeout: float,
) -> Event:
    if settings.forwarded != "accept_unverified":
        return event.rejected(
            f"inline-forwarded message: forwarded by {forwarder}, the original's "
            "DKIM signature cannot be checked; set [security] forwarded = "
            '"accept_unverified" and list the forwarder in internal_forwarders '
            "to accept it, or redirect the notifications instead of forwarding"
        )
    if not _listed(forwarder, settings.internal_forwarders):
        return event.rejected(
            f"inline-forwarded message: forwarder {forwarder} is not listed in "
            "[security] internal_forwarders"
        )
    if settings.require_dkim:
        fdomain = _domain(forwarder)
        results = verify_signatures(
            reading.canonical,
            lookup,
            wanted=lambda d: _under(fdomain, d) or _under(d, fdomain),
            timeout=timeout,
        )
        if not any(r.passed for r in results):
            return event.rejected(
                "inline-forwarded message: the forwarding message has no "
                f"passing DKIM signature for {fdomain} "
                f"({_describe(results, fdomain)})"
            )
    return event.replace(trust=Trust.UNVERIFIED)


def _dkim_reason(
    results: Sequence[Signature], sender_domain: str, settings: SecuritySettings
) -> str:
    if not results:
        return "DKIM signature missing"
    checked = [r for r in results if r.checked]
    if checked:
        first = checked[0]
        return f"DKIM fails: {first.error} (d={first.domain}, s={first.selector})"
    found = results[0].domain or "unreadable"
    if _allowed_base(found, settings.allowed_sender_domains) is None:
        return (
            f"DKIM signature missing for {sender_domain}: d={found} is not an "
            "allowed sender domain"
        )
    return (
        f"DKIM signature missing for {sender_domain}: d={found} is not aligned "
        f"with the sender domain {sender_domain}"
    )


def _describe(results: Sequence[Signature], domain: str) -> str:
    checked = [r for r in results if r.checked]
    if checked:
        return f"DKIM fails: {checked[0].error}"
    if results:
        return "only signatures of " + ", ".join(sorted({r.domain for r in results}))
    return "DKIM signature missing"


# -- domains --------------------------------------------------------------


def _under(domain: str, base: str) -> bool:
    """`domain` is `base` or one of its subdomains."""
    return bool(base) and (domain == base or domain.endswith("." + base))


def _allowed_base(domain: str, allowed: Sequence[str]) -> str | None:
    for base in allowed:
        if _under(domain, base.lower().strip().rstrip(".")):
            return base
    return None


def _aligned(d: str, sender_domain: str, allowed: Sequence[str]) -> bool:
    """`d=` and the From domain lie under one allowed domain (relaxed)."""
    for base in allowed:
        base = base.lower().strip().rstrip(".")
        if _under(d, base) and _under(sender_domain, base):
            return True
    return False


def _listed(address: str, entries: Sequence[str]) -> bool:
    domain = _domain(address)
    for entry in entries:
        entry = entry.lower().strip()
        if "@" in entry:
            if entry == address:
                return True
        elif _under(domain, entry.lstrip("@").rstrip(".")):
            return True
    return False


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


# -- the outer message --------------------------------------------------------


def _envelope(reading: Reading) -> _Envelope:
    """The single From address (and the Subject) of the outer message."""
    message = reading.message
    if message is None:
        return _Envelope(None, reading.unreadable or "unreadable message", "")
    froms = [str(v) for v in (message.get_all("From") or [])]
    subject = reading.view.outer_subject if reading.view is not None else ""
    if len(froms) != 1:
        # Several From headers let a signed one hide a forged one (RFC 6376 8.15).
        return _Envelope(None, f"message has {len(froms)} From headers", subject)
    addresses = [a for _, a in email.utils.getaddresses(froms) if "@" in a]
    if len(addresses) != 1:
        return _Envelope(None, "From header does not name one address", subject)
    return _Envelope(addresses[0].strip().lower(), None, subject)


@functools.lru_cache(maxsize=8)
def _default_dnsfunc(servers: tuple[str, ...], timeout: float) -> DnsFunc:
    return resolver_dnsfunc(servers, timeout)
