"""DKIM verification of raw email (RFC 6376) with dkimpy and dnspython.

`verify_signatures(raw, dnsfunc, wanted=...)` checks each `DKIM-Signature`
header of a message and returns one `Signature` per header: its `d=`/`s=`, and
whether it verified or why not. Only signatures whose `d=` the caller `wanted`
are checked against DNS, so an irrelevant signature (AWS mail also carries one
from `amazonses.com`) never costs a look-up or a DNS failure.

`resolver_dnsfunc(servers, timeout)` builds the DNS function dkimpy calls as
`dnsfunc(name: bytes, timeout=...) -> bytes | None`. Unlike dkimpy's own
look-up, it tells "no key" (NXDOMAIN, no TXT record: the signature fails for
good) from "DNS unavailable" (timeout, SERVFAIL from every server, no resolver:
`TransientError`, so the message stays pending and is checked again later).
Answers are cached in memory for their DNS TTL (at most an hour; "no key" for a
minute); failures are not cached.
Tests inject their own function serving a locally generated key.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import dkim
import dkim.canonicalization
import dkim.util
import dns.exception
import dns.resolver

from mailsync.errors import TransientError

_MISSING_KEY = "missing public key"
#: how long a key (at most) and "no key" answers are kept, in seconds
_MAX_TTL = 3600
_NEGATIVE_TTL = 60.0
_CACHE_ENTRIES = 1000
#: a DKIM-Signature field at a line start (a body line may match too; then
#: dkimpy's own header parsing decides)
_SIGNATURE_FIELD = re.compile(rb"^dkim-signature[ \t]*:", re.I | re.M)


class DnsFunc(Protocol):
    """The TXT look-up dkimpy calls: `name` is like b"sel._domainkey.example."."""

    def __call__(self, name: bytes, timeout: int | float = 5) -> bytes | None: ...


@dataclass(frozen=True)
class Signature:
    """The outcome for one DKIM-Signature header."""

    domain: str  #: `d=`, lower-case, no trailing dot ("" if unreadable)
    selector: str  #: `s=`
    passed: bool
    checked: bool  #: False when skipped (its domain was not wanted)
    error: str | None = None  #: why it failed, one line ("body hash mismatch")
    #: the field names its h= signs, lower case
    signed: frozenset[str] = frozenset()


class _Collect:
    """A stand-in for dkimpy's logger that keeps its error messages.

    Some failures (missing key, DNS errors) are only logged by dkimpy, not
    raised; a private object per verification keeps threads apart.
    """

    def __init__(self) -> None:
        self.errors: list[str] = []

    def isEnabledFor(self, level: int) -> bool:  # the logging.Logger API name
        return level >= logging.ERROR

    def debug(self, *args: Any, **kwargs: Any) -> None:
        pass

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.errors.append(str(msg) % args if args else str(msg))


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return str(value)


#: at most this many signatures of wanted domains are checked per message
#: (each may cost a DNS look-up and an RSA verification; real Marketplace
#: mail carries one or two)
MAX_CHECKED = 5
#: the fields a signature must sign for the message to count as verified:
#: the ones the event is built from (RFC 6376 5.4 lists From as required;
#: Subject picks the parser, Date gives the event time, Message-ID is the
#: delivery ID)
REQUIRED_SIGNED = ("from", "subject", "date", "message-id")


def signature_count(raw: bytes) -> int:
    """How many DKIM-Signature headers the message carries."""
    verifier = _parse(raw)
    return 0 if verifier is None else len(_signature_tags(verifier))


def _parse(raw: bytes) -> Any:
    """dkimpy's reading of the message (headers and body), or None when it
    has no DKIM-Signature field or dkimpy rejects its header block."""
    if not _SIGNATURE_FIELD.search(raw):
        return None  # no need to have dkimpy parse the whole header block
    try:
        return dkim.DKIM(raw)
    except Exception:  # dkimpy rejects some malformed header blocks outright
        return None


def _signature_tags(verifier: Any) -> list[tuple[str, str, dict[bytes, bytes]]]:
    """(d=, s=, tags) per DKIM-Signature header, read without verifying."""
    out: list[tuple[str, str, dict[bytes, bytes]]] = []
    for name, value in verifier.headers:
        if name.lower() != b"dkim-signature":
            continue
        try:
            tags = dkim.util.parse_tag_value(value)
        except Exception:
            out.append(("", "", {}))
            continue
        domain = _text(tags.get(b"d", b"")).strip().lower().rstrip(".")
        out.append((domain, _text(tags.get(b"s", b"")).strip(), tags))
    return out


def verify_signatures(
    raw: bytes,
    dnsfunc: DnsFunc,
    *,
    wanted: Callable[[str], bool] = lambda domain: True,
    timeout: float = 5.0,
) -> list[Signature]:
    """Verify the DKIM signatures of `raw` whose `d=` satisfies `wanted`.

    The message is parsed once for all signatures. Only the first
    `MAX_CHECKED` wanted signatures are checked (a message with thousands of
    signatures costs no more than one with five). A signature passes only
    when dkimpy verifies it *and* it covers what the event is read from:
    its `h=` names every field of `REQUIRED_SIGNED` (and Content-Type when
    the message has one: it decides how the body is read), and it has no
    `l=` shorter than the body (text appended after the signed length would
    be read as fields). Return one `Signature` per header, in header order.
    Raise `TransientError` when none passed and a wanted signature could not
    be checked because DNS was unavailable.
    """
    verifier = _parse(raw)
    if verifier is None:
        return []
    results: list[Signature] = []
    unavailable: TransientError | None = None
    present = {name.lower() for name, _ in verifier.headers}
    checked = 0
    for idx, (domain, selector, tags) in enumerate(_signature_tags(verifier)):
        if not domain or not wanted(domain) or checked >= MAX_CHECKED:
            results.append(Signature(domain, selector, False, False, "not checked"))
            continue
        checked += 1
        signed = _signed(tags)
        problem = _coverage(verifier, tags, signed, present)
        if problem is not None:
            results.append(Signature(domain, selector, False, True, problem))
            continue
        try:
            passed, error = _verify_one(verifier, idx, dnsfunc, timeout)
        except TransientError as err:
            # Another signature may still pass; decide once all are seen.
            unavailable = err
            results.append(Signature(domain, selector, False, True, str(err)))
            continue
        results.append(Signature(domain, selector, passed, True, error, signed))
    if unavailable is not None and not any(r.passed for r in results):
        raise unavailable
    return results


def _signed(tags: dict[bytes, bytes]) -> frozenset[str]:
    return frozenset(
        _text(name).strip().lower() for name in tags.get(b"h", b"").split(b":")
    )


def _coverage(
    verifier: Any,
    tags: dict[bytes, bytes],
    signed: frozenset[str],
    present: set[bytes],
) -> str | None:
    """Why a signature does not cover what the event is read from, or None."""
    required = list(REQUIRED_SIGNED)
    if b"content-type" in present:
        required.append("content-type")
    missing = [name for name in required if name not in signed]
    if missing:
        names = ", ".join(_FIELD_NAMES.get(n, n) for n in missing)
        return f"signature does not sign {names} (h= must cover them)"
    length = tags.get(b"l")
    if length is not None:
        try:
            policy = dkim.canonicalization.CanonicalizationPolicy.from_c_value(
                tags.get(b"c", b"simple/simple")
            )
            body = len(policy.canonicalize_body(verifier.body))
            signed_length = int(length)
        except Exception:
            return "malformed l= or c= tag"
        if signed_length < body:
            return (
                f"signature covers only the first {signed_length} of {body} body "
                "bytes (l=)"
            )
    return None


_FIELD_NAMES = {
    "from": "From",
    "subject": "Subject",
    "date": "Date",
    "message-id": "Message-ID",
    "content-type": "Content-Type",
}


def _verify_one(
    verifier: Any, idx: int, dnsfunc: DnsFunc, timeout: float
) -> tuple[bool, str | None]:
    collector = _Collect()
    verifier.logger = collector  # dkimpy logs some failures instead of raising
    verifier.timeout = timeout
    try:
        ok = bool(verifier.verify(idx=idx, dnsfunc=dnsfunc))
    except TransientError:
        raise
    except dkim.DKIMException as err:
        return False, _reason(str(err))
    except Exception as err:  # malformed input that dkimpy does not wrap
        return False, _reason(f"malformed signature ({type(err).__name__}: {err})")
    if ok:
        return True, None
    if collector.errors:
        return False, _reason(collector.errors[-1])
    return False, "signature does not verify"


def _reason(message: str) -> str:
    """A short, one-line failure reason (drops dkimpy's hash dumps)."""
    message = " ".join(message.split())
    if message.startswith("body hash mismatch"):
        return "body hash mismatch"
    if message.startswith(_MISSING_KEY):
        return "no public key published in DNS"
    return message[:200]


# -- DNS ----------------------------------------------------------------------


def _host_port(server: str, default: int) -> tuple[str, int]:
    """`"10.0.0.2"`, `"10.0.0.2:5353"` or `"[::1]:5353"` as (address, port)."""
    server = server.strip()
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default
    if server.count(":") == 1:
        host, _, port = server.partition(":")
        return host, int(port)
    return server, default


def resolver_dnsfunc(
    servers: Sequence[str] = (), timeout: float = 5.0, *, port: int = 53
) -> DnsFunc:
    """A dkimpy DNS function using dnspython, `servers` (empty: the system's).

    NXDOMAIN or no TXT record returns None (dkimpy then fails the signature
    for "missing public key"); a timeout, every server failing (SERVFAIL) or
    no usable resolver raises `TransientError`, because the key may well
    exist and the message must be checked again later, not rejected.
    """
    resolver: dns.resolver.Resolver | None = None

    def get_resolver() -> dns.resolver.Resolver:
        nonlocal resolver
        if resolver is None:
            try:
                resolver = dns.resolver.Resolver(configure=not servers)
            except dns.resolver.NoResolverConfiguration as err:
                raise TransientError(
                    f"DKIM key look-up: no DNS resolver configured ({err}); "
                    "set [security] dns_servers"
                ) from None
            if servers:
                hosts = [_host_port(server, port) for server in servers]
                resolver.nameservers = [host for host, _ in hosts]
                resolver.nameserver_ports = dict(hosts)
                resolver.port = port
        return resolver

    # DKIM keys change rarely and every message of a sender names the same
    # selector: keep answers for their DNS TTL (capped), so a backfill does
    # one look-up per key instead of one per message.
    cache: dict[str, tuple[float, bytes | None]] = {}

    def lookup(name: bytes, timeout: int | float = timeout) -> bytes | None:
        qname = _text(name)
        hit = cache.get(qname.lower())
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        value, ttl = fetch(qname, timeout)
        if len(cache) >= _CACHE_ENTRIES:
            cache.clear()
        cache[qname.lower()] = (time.monotonic() + ttl, value)
        return value

    def fetch(qname: str, timeout: int | float) -> tuple[bytes | None, float]:
        """(key record or None, seconds it may be kept)."""
        try:
            answer = get_resolver().resolve(
                qname, "TXT", lifetime=float(timeout), raise_on_no_answer=False
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None, _NEGATIVE_TTL
        except dns.exception.Timeout:
            raise TransientError(
                f"DKIM key look-up for {qname} timed out after {timeout} s"
            ) from None
        except dns.resolver.NoNameservers:
            raise TransientError(
                f"DKIM key look-up for {qname}: no DNS server answered (SERVFAIL)"
            ) from None
        except dns.exception.DNSException as err:
            raise TransientError(f"DKIM key look-up for {qname}: {err}") from None
        if answer.rrset is None:
            return None, _NEGATIVE_TTL
        ttl = float(min(answer.rrset.ttl, _MAX_TTL))
        for rdata in answer.rrset:
            # A TXT record may be split in several strings (RFC 6376 3.6.2.2).
            return b"".join(rdata.strings), ttl
        return None, _NEGATIVE_TTL

    return lookup
