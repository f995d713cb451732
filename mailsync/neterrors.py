"""Network failures in words an admin can act on, without Python internals.

`describe(exc)` turns what the socket, ssl, urllib3 or requests layers raise
into one short phrase ("host name not found", "connection refused", "timed
out", "TLS handshake failed (WRONG_VERSION_NUMBER): the server did not answer
with TLS; check tls and port") instead of reprs such as ``HTTPSConnectionPool(
host=..., port=443): Max retries exceeded ... NameResolutionError(...)``.
`server_text(value)` is the text a server sent, also when a library handed it
over as the repr of a bytes object (``b'[AUTHENTICATIONFAILED] ...'``).
"""

from __future__ import annotations

import ast
import re
import socket
import ssl

#: "[Errno 111] Connection refused" -> "Connection refused" (linear: no nesting)
_ERRNO_RE = re.compile(r"\[Errno -?\d+\] ([^\]\)\(']{1,200})")
_SSL_RE = re.compile(r"\[SSL: ([A-Z0-9_]{1,80})\]")
_BYTES_REPR_RE = re.compile(r"""b(['"]).{0,2000}\1""", re.DOTALL)

#: what an SSL reason code means for the admin
_SSL_HINTS = {
    "WRONG_VERSION_NUMBER": "the server did not answer with TLS; {fix}",
    "UNSUPPORTED_PROTOCOL": "the server only offers an old TLS version",
}


def describe(exc: BaseException, fix: str = "check the port") -> str:
    """One phrase for a network failure, walking to its root cause; `fix`
    says what to check when the server does not speak TLS on that port."""
    root = _root(exc)
    if isinstance(root, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({root.verify_message})"
    text = str(root)
    ssl_code = _SSL_RE.search(text)
    if isinstance(root, ssl.SSLError) or ssl_code:
        code = ssl_code.group(1) if ssl_code else getattr(root, "reason", None)
        hint = _SSL_HINTS.get(str(code), "").format(fix=fix)
        return f"TLS handshake failed ({code or 'unknown reason'})" + (
            f": {hint}" if hint else ""
        )
    if isinstance(root, socket.gaierror) or "NameResolution" in type(root).__name__:
        return "host name not found (DNS)"
    if isinstance(root, ConnectionRefusedError) or "Connection refused" in text:
        return "connection refused"
    if isinstance(root, TimeoutError) or "timed out" in text.lower():
        return "timed out"
    if isinstance(root, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(root, OSError) and root.strerror:
        return str(root.strerror)
    errno_text = _ERRNO_RE.search(text)
    if errno_text:
        return errno_text.group(1).strip()
    return type(root).__name__.replace("Error", " error").strip().lower()


def _root(exc: BaseException) -> BaseException:
    """The innermost cause: urllib3's `MaxRetryError.reason`, requests' first
    argument, `__cause__` / `__context__`; bounded, never loops."""
    seen = 0
    while seen < 10:
        seen += 1
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException):
            args = getattr(exc, "args", ())
            inner = args[0] if args and isinstance(args[0], BaseException) else None
        inner = inner or exc.__cause__ or exc.__context__
        if not isinstance(inner, BaseException) or inner is exc:
            return exc
        exc = inner
    return exc


def server_text(value: object) -> str:
    """The text a server sent: bytes decoded, and a ``b'...'`` repr (imaplib
    puts one in its exception messages) read back as the bytes it shows."""
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
    else:
        text = str(value)
        match = _BYTES_REPR_RE.fullmatch(text.strip())
        if match:
            try:
                literal = ast.literal_eval(match.group(0))
            except (ValueError, SyntaxError):
                literal = None
            if isinstance(literal, bytes):
                text = literal.decode("utf-8", "replace")
    return " ".join(text.split())[:300]
