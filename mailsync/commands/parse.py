"""`mailsync parse PATH...` (contract section 1).

Prints one JSON object per input, in input order, as JSON Lines on stdout:
`{"input": PATH, **event.to_json()}` with `PATH` exactly as given. A path that
cannot be read gets a one-line message on stderr (and no output line); the
others are still printed, and the exit code is then 2, else 0. Needs no
configuration, no state and no network.

`apply_trust(event, raw, path)` is the single place where a trust decision is
made for a parsed input; with `--require-trust` every event that is not
`verified` comes out as `trust: rejected` with a reason starting
"not verified: ".
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path

from mailsync import config
from mailsync.config import SecuritySettings
from mailsync.errors import ConfigError, InputError
from mailsync.event import Channel, Event, Trust
from mailsync.parsers.files import is_json, parse_bytes, read_input, received_at
from mailsync.security.email_gate import clamp_occurred, read_and_parse
from mailsync.security.limits import check_size, parse_with_timeout
from mailsync.security.sns_verify import saved_input_verdict

# Why an input stays unverified when `parse` runs without any trust check.
_UNCHECKED = {
    Channel.EMAIL: "parse does not check email DKIM signatures",
    Channel.SNS: "no SNS signature check is configured",
    Channel.EVENTBRIDGE: "EventBridge events carry no signature of their own",
}


def apply_trust(
    event: Event,
    raw: bytes,
    path: Path,
    *,
    require_trust: bool = False,
    sns_certificate_dir: str | None = None,
) -> Event:
    """`event` with its trust decided for the saved input `raw` at `path`.

    Today this only enforces `require_trust`: anything not `verified` becomes
    `rejected` with a reason saying why it is not verified (the parser's own
    reason, for an unrecognized input, is kept after it).
    """
    if event.channel is Channel.SNS:
        # SNS signatures are checked when the certificate is at hand locally
        # (`[security] sns_certificate_dir`); parse never downloads.
        verdict = saved_input_verdict(raw, sns_certificate_dir)
        if verdict is not None and verdict.trust is Trust.VERIFIED:
            event = event.replace(trust=Trust.VERIFIED)
        elif verdict is not None and verdict.trust is Trust.REJECTED:
            return event.rejected(verdict.reason or "SNS signature check failed")
    if not require_trust or event.trust is Trust.VERIFIED:
        return event
    if event.trust is Trust.REJECTED:
        return event
    reason = f"not verified: {_UNCHECKED[event.channel]}"
    if event.reason:
        reason = f"{reason}; {event.reason}"
    return event.rejected(reason)


def run(args: argparse.Namespace) -> int:
    """Parse every path in `args.paths`; see the module docstring."""
    require_trust = bool(getattr(args, "require_trust", False))
    security = _security(getattr(args, "config", None))
    cert_dir = security.sns_certificate_dir or None
    code = 0
    for given in args.paths:
        path = Path(given)
        try:
            raw = read_input(path, security.max_message_bytes)
        except InputError as err:
            sys.stdout.flush()  # keep stdout and stderr in input order on a tty
            print(f"mailsync: {err}", file=sys.stderr)
            code = err.exit_code
            continue
        event = parse_capped(raw, path, security)
        event = apply_trust(
            event, raw, path, require_trust=require_trust, sns_certificate_dir=cert_dir
        )
        _emit({"input": str(given), **event.to_json()})
    return code


def parse_capped(raw: bytes, path: Path, security: SecuritySettings) -> Event:
    """`parse_bytes` under the same limits as live input: `[security]
    max_message_bytes` (`raw` may hold one byte more, see `read_input`) and
    the parse time cap (a worker process); an email's date is clamped to the
    file's mtime."""
    too_big = check_size(raw, security)
    if too_big is not None:
        return Event.unrecognized(too_big)
    if is_json(raw, path.name):
        fn: Callable[[bytes], Event] = functools.partial(parse_bytes, name=path.name)
    else:
        fn = read_and_parse  # the one reading the daemon's trust check uses
    event = parse_with_timeout(fn, raw, security.parse_timeout_seconds)
    return clamp_occurred(event, received_at(path))


def _security(given: Path | None) -> SecuritySettings:
    """`[security]` from `--config`, else from the default config when it
    exists and is valid; parse needs no config at all."""
    path = given or config.default_path()
    if given is None and not path.is_file():
        return SecuritySettings()
    try:
        return config.load(path).security
    except ConfigError:
        if given is not None:
            raise
        return SecuritySettings()


def _emit(obj: dict[str, object]) -> None:
    line = json.dumps(obj, ensure_ascii=False) + "\n"
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is not None:
        # UTF-8 whatever the locale says: JSON Lines consumers expect UTF-8.
        sys.stdout.flush()
        buffer.write(line.encode("utf-8"))
        buffer.flush()
    else:
        sys.stdout.write(line)
