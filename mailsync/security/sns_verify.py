"""SNS message authenticity: signature, signing certificate and topic checks.

`SnsVerifier.verify(envelope)` returns when an SNS envelope (`Notification`,
`SubscriptionConfirmation` or `UnsubscribeConfirmation`, as decoded from an SQS
body) is authentic and comes from an allowed topic. Otherwise it raises:

- `RejectedError`: the message failed a check (bad signature, disallowed topic,
  certificate URL not on an SNS host, certificate not valid at the message's
  `Timestamp`, ...). The message must never be synced.
- `CertificateUnavailableError`: the signing certificate is neither cached nor
  in `[security] sns_certificate_dir`, and downloading is off (`mailsync parse`).
- `CertificateFetchError` (a `TransientError`): the download of an allowed
  certificate URL failed; retry later. The failure is remembered for
  `failure_ttl` seconds (a negative cache): envelopes naming that URL fail at
  once, without a download, so a flood of forged envelopes naming a missing
  certificate costs one request, not one per message. The SQS source counts
  this failure against `max_receives`, so such a message is quarantined, not
  retried forever.

The algorithm follows "Verifying the signatures of Amazon SNS messages"
(https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html):
SignatureVersion 1 = RSA PKCS#1 v1.5 with SHA1, 2 = with SHA256, over the UTF-8
bytes of ``key\\nvalue\\n`` for the signed keys in byte order.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from mailsync.errors import MailsyncError, RejectedError, TransientError
from mailsync.event import Trust

log = logging.getLogger(__name__)

#: AWS Marketplace topics live in account 287250355862, us-east-1 (seller guide,
#: "SaaS notification" / "AMI notification" pages); one topic per product code.
MARKETPLACE_TOPICS: tuple[str, ...] = (
    "arn:aws:sns:us-east-1:287250355862:aws-mp-subscription-notification-*",
    "arn:aws:sns:us-east-1:287250355862:aws-mp-entitlement-notification-*",
)

#: Envelope types and the keys each signs, in the byte order SNS uses.
#: the signed keys of both confirmation types, in signing order
_CONFIRMATION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
SIGNED_KEYS: dict[str, tuple[str, ...]] = {
    "Notification": (
        "Message",
        "MessageId",
        "Subject",
        "Timestamp",
        "TopicArn",
        "Type",
    ),
    "SubscriptionConfirmation": _CONFIRMATION_FIELDS,
    "UnsubscribeConfirmation": _CONFIRMATION_FIELDS,
}
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "1": hashes.SHA1,
    "2": hashes.SHA256,
}
# The host rule of AWS's own message validators (aws-php/js-sns-message-validator).
_HOST_RE = re.compile(r"^sns\.[a-z0-9-]{3,}\.amazonaws\.com(\.cn)?$")
# Names the real SNS signing certificates are issued to (CN=sns.amazonaws.com).
_CERT_NAME_RE = re.compile(r"^sns(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?$")

Fetcher = Callable[[str], bytes]


class CertificateUnavailableError(MailsyncError):
    """The signing certificate is not available without a download."""


class CertificateFetchError(TransientError):
    """The signing certificate could not be downloaded (now, or recently)."""


#: Seconds a failed certificate download is remembered (negative cache).
FAILURE_TTL = 300.0


def is_envelope(data: object) -> bool:
    """True when `data` looks like an SNS envelope (not a bare message)."""
    return (
        isinstance(data, Mapping)
        and data.get("Type") in SIGNED_KEYS
        and "TopicArn" in data
        and "MessageId" in data
    )


def cert_url(envelope: Mapping[str, Any]) -> str:
    """`SigningCertURL` (HTTP/SQS spelling) or `SigningCertUrl` (Lambda)."""
    value = envelope.get("SigningCertURL", envelope.get("SigningCertUrl"))
    return value if isinstance(value, str) else ""


def check_cert_url(url: str) -> None:
    """Raise `RejectedError` unless `url` is https on an SNS host, ending .pem."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        raise RejectedError(f"SigningCertURL is not a valid URL: {url!r}") from None
    if parts.scheme != "https":
        raise RejectedError(f"SigningCertURL must use https: {url!r}")
    if not _HOST_RE.match(host) or parts.username or parts.password:
        raise RejectedError(f"SigningCertURL host is not an SNS host: {host!r}")
    if port not in (None, 443):
        raise RejectedError(f"SigningCertURL must use port 443: {url!r}")
    if not parts.path.endswith(".pem") or parts.query or parts.fragment:
        raise RejectedError(f"SigningCertURL must name a .pem file: {url!r}")


def topic_allowed(topic_arn: str, allowed: Sequence[str]) -> bool:
    """True when `topic_arn` matches one of `allowed` (shell-style `*`)."""
    return any(fnmatch.fnmatchcase(topic_arn, pattern) for pattern in allowed)


def string_to_sign(envelope: Mapping[str, Any]) -> bytes:
    """The canonical bytes SNS signs for this envelope (UTF-8).

    `Subject` is signed only when present (AWS: "only if the message includes
    a subject"); every other listed key must be a string.
    """
    kind = envelope.get("Type")
    keys = SIGNED_KEYS.get(kind) if isinstance(kind, str) else None
    if keys is None:
        raise RejectedError(f"unknown SNS message Type {kind!r}")
    out: list[str] = []
    for key in keys:
        value = envelope.get(key)
        if value is None and key == "Subject":
            continue
        if not isinstance(value, str):
            raise RejectedError(f"SNS envelope field {key} is missing or not text")
        out.append(f"{key}\n{value}\n")
    return "".join(out).encode("utf-8")


def parse_timestamp(value: object) -> datetime:
    """The envelope's `Timestamp` as an aware UTC datetime; else `RejectedError`."""
    if not isinstance(value, str):
        raise RejectedError("SNS envelope has no Timestamp")
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RejectedError(f"SNS Timestamp is not ISO 8601: {value!r}") from None
    if stamp.tzinfo is None:
        raise RejectedError(f"SNS Timestamp has no time zone: {value!r}")
    return stamp.astimezone(UTC)


def default_fetch(url: str) -> bytes:
    """Download `url` (already checked by `check_cert_url`) with timeouts."""
    import requests  # imported here: `mailsync parse` never downloads

    try:
        response = requests.get(url, timeout=(5, 10), allow_redirects=False)
        response.raise_for_status()
    except requests.RequestException as err:
        raise TransientError(
            f"SNS signing certificate download failed: {err}"
        ) from None
    return response.content


@dataclass(frozen=True)
class Verdict:
    """The trust outcome for one input: `trust` plus a reason when not verified."""

    trust: Trust
    reason: str | None = None


class SnsVerifier:
    """Checks SNS envelopes; certificates cached in memory, per signing URL.

    `topic_arns`: allowed topics (shell-style patterns); empty = the AWS
    Marketplace topics. `certificate_dir`: pre-fetched certificates named as
    the last path segment of SigningCertURL, consulted before any download
    (for hosts without egress). `fetch`: downloads a checked URL; `None` means
    never download (certificate must be local).
    """

    def __init__(
        self,
        *,
        topic_arns: Sequence[str] = (),
        certificate_dir: str | Path | None = None,
        fetch: Fetcher | None = default_fetch,
        failure_ttl: float = FAILURE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topic_arns = tuple(topic_arns) or MARKETPLACE_TOPICS
        self.certificate_dir = Path(certificate_dir) if certificate_dir else None
        self.fetch = fetch
        self._cache: dict[str, x509.Certificate] = {}
        self._failed: dict[str, tuple[float, str]] = {}  # url: (until, reason)
        self.failure_ttl = failure_ttl
        self.clock = clock
        self._lock = threading.Lock()

    def verify(self, envelope: Mapping[str, Any]) -> None:
        """Return if `envelope` is authentic and allowed; else raise (see module)."""
        kind = envelope.get("Type")
        if kind not in SIGNED_KEYS:
            raise RejectedError(f"unknown SNS message Type {kind!r}")
        version = str(envelope.get("SignatureVersion", ""))
        algorithm = _HASHES.get(version)
        if algorithm is None:
            raise RejectedError(f"unsupported SNS SignatureVersion {version!r}")
        # Cheap policy checks first, so a forged message never causes a download.
        topic = envelope.get("TopicArn")
        if not isinstance(topic, str) or not topic_allowed(topic, self.topic_arns):
            raise RejectedError(f"SNS topic {topic!r} is not an allowed topic")
        url = cert_url(envelope)
        check_cert_url(url)
        signed = string_to_sign(envelope)
        at = parse_timestamp(envelope.get("Timestamp"))
        try:
            signature = base64.b64decode(
                str(envelope.get("Signature", "")), validate=True
            )
        except (binascii.Error, ValueError):
            raise RejectedError("SNS Signature is not valid base64") from None
        cert = self.certificate(url)
        _check_certificate(cert, at)
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise RejectedError("SNS signing certificate does not hold an RSA key")
        try:
            key.verify(signature, signed, padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise RejectedError("SNS signature does not match the message") from None

    def verdict(self, envelope: Mapping[str, Any]) -> Verdict:
        """`verify` as a value: verified, rejected (with reason) or unverified
        (certificate not available locally, or a download failure).

        Without a fetcher, an envelope whose certificate is not at hand is
        `unverified` before any other check: no check was possible.
        """
        if self.fetch is None and not self.has_certificate(cert_url(envelope)):
            return Verdict(
                Trust.UNVERIFIED,
                "SNS signing certificate not available locally "
                "(set [security] sns_certificate_dir)",
            )
        try:
            self.verify(envelope)
        except RejectedError as err:
            return Verdict(Trust.REJECTED, str(err))
        except (CertificateUnavailableError, TransientError) as err:
            return Verdict(Trust.UNVERIFIED, str(err))
        return Verdict(Trust.VERIFIED)

    def has_certificate(self, url: str) -> bool:
        """True when the certificate for `url` is cached or in the directory."""
        with self._lock:
            if url in self._cache:
                return True
        name = _file_name(url)
        return bool(
            name and self.certificate_dir and (self.certificate_dir / name).is_file()
        )

    def certificate(self, url: str) -> x509.Certificate:
        """The certificate for a checked `url`: memory, then the certificate
        directory, then a download (when a fetcher is set)."""
        with self._lock:
            cached = self._cache.get(url)
        if cached is not None:
            return cached
        name = _file_name(url)
        data: bytes | None = None
        if self.certificate_dir is not None and name:
            local = self.certificate_dir / name
            if local.is_file():
                data = local.read_bytes()
        if data is None:
            if self.fetch is None:
                raise CertificateUnavailableError(
                    f"SNS signing certificate {name} is not in sns_certificate_dir"
                )
            data = self._download(url)
        try:
            cert = x509.load_pem_x509_certificate(data)
        except ValueError:
            raise RejectedError(f"SNS signing certificate {name} is not PEM") from None
        with self._lock:
            self._cache[url] = cert
        return cert

    def _download(self, url: str) -> bytes:
        """Fetch `url` unless it failed within `failure_ttl`; remember a failure."""
        assert self.fetch is not None
        now = self.clock()
        with self._lock:
            failed = self._failed.get(url)
            if failed is not None and failed[0] <= now:
                del self._failed[url]
                failed = None
        if failed is not None:
            raise CertificateFetchError(f"{failed[1]} (not retried for a while)")
        log.info("downloading SNS signing certificate %s", url)
        try:
            return self.fetch(url)
        except TransientError as err:
            reason = str(err)
            with self._lock:
                if len(self._failed) > 1000:  # hostile URLs cannot grow it
                    self._failed.clear()
                self._failed[url] = (now + self.failure_ttl, reason)
            raise CertificateFetchError(reason) from None


def _file_name(url: str) -> str:
    """The last path segment of a certificate URL ("" if it has none)."""
    try:
        name = urlsplit(url).path.rsplit("/", 1)[-1]
    except ValueError:
        return ""
    return name if name not in ("", ".", "..") else ""


def _check_certificate(cert: x509.Certificate, at: datetime) -> None:
    """Reject a certificate not issued to SNS or not valid at message time.

    Validity is judged at the message's `Timestamp`, not now: SQS may hold a
    message for up to 14 days, across a certificate rotation.
    """
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise RejectedError(
            "SNS signing certificate was not valid at the message time "
            f"{at:%Y-%m-%dT%H:%M:%SZ}"
        )
    names = [
        str(a.value).lower()
        for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names += [n.lower() for n in san.value.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        pass
    if not any(_CERT_NAME_RE.match(n) for n in names):
        raise RejectedError("SNS signing certificate is not issued to an SNS host")


def verifier_for_parse(
    certificate_dir: str | Path | None, topic_arns: Sequence[str] = ()
) -> SnsVerifier:
    """A verifier that never downloads (for `mailsync parse`): certificates
    come only from `certificate_dir`; see `SnsVerifier.verdict`."""
    return SnsVerifier(
        topic_arns=topic_arns, certificate_dir=certificate_dir, fetch=None
    )


def saved_input_verdict(
    raw: bytes, certificate_dir: str | Path | None, topic_arns: Sequence[str] = ()
) -> Verdict | None:
    """The signature verdict for a saved JSON input (`mailsync parse`), or None
    when it holds no SNS envelope. Accepts the envelope itself, an SQS message
    (`Body` / `body`) or a Lambda record holding it; never downloads."""
    # The same unwrapping as the parser and the SQS admission, so the verdict
    # is about the envelope that is parsed.
    from mailsync.parsers.json_input import Unwrapped, unwrap
    from mailsync.parsers.jsonload import TooDeepError
    from mailsync.parsers.sns import normalize_envelope

    try:
        found = unwrap(raw)
    except TooDeepError:
        return None
    if not isinstance(found, Unwrapped):
        return None
    obj = found.obj
    envelope = normalize_envelope(obj)
    if envelope is None:
        return None
    return verifier_for_parse(certificate_dir, topic_arns).verdict(envelope)
