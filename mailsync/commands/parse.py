"""`mailsync parse PATH...` (contract section 1).

Prints one JSON object per input, in input order, as JSON Lines on stdout:
`{"input": PATH, **event.to_json()}` with `PATH` exactly as given. A folder
stands for its files (sorted, recursively, hidden ones skipped, as `replay`
reads it), each with its path under the folder as given; ``-`` is standard
input. A path that cannot be read gets a one-line message on stderr (and no
output line); the others are still printed, and the exit code is then 2,
else 0. Needs no configuration, no state and no network; with a config
(``--config``, or the default one when it exists) its ``[security]
sns_certificate_dir`` and ``[source.sqs] topic_arns`` decide SNS trust as the
daemon does.

`apply_trust(event, raw, path)` is the single place where a trust decision is
made for a parsed input; with `--require-trust` every event that is not
`verified` comes out as `trust: rejected` with a reason starting
"not verified: ".
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from mailsync import config
from mailsync.config import SecuritySettings
from mailsync.errors import ConfigError, InputError
from mailsync.event import Channel, Event, Trust
from mailsync.parsers.files import (
    files_in,
    is_json,
    parse_bytes,
    read_input,
    received_at,
)
from mailsync.security.email_gate import clamp_occurred, read_and_parse
from mailsync.security.limits import check_size, parse_with_timeout
from mailsync.security.sns_verify import saved_input_verdict
from mailsync.textsafe import dumps, escape

# Why an input stays unverified when `parse` runs without any trust check.
_UNCHECKED = {
    Channel.EMAIL: "parse does not check email DKIM signatures",
    Channel.SNS: "no SNS signature check is configured",
    Channel.EVENTBRIDGE: "EventBridge events carry no signature of their own",
    Channel.API: "a saved Agreement API response carries no signature",
}


def apply_trust(
    event: Event,
    raw: bytes,
    path: Path,
    *,
    require_trust: bool = False,
    sns_certificate_dir: str | None = None,
    topic_arns: Sequence[str] = (),
) -> Event:
    """`event` with its trust decided for the saved input `raw` at `path`.

    Today this only enforces `require_trust`: anything not `verified` becomes
    `rejected` with a reason saying why it is not verified (the parser's own
    reason, for an unrecognized input, is kept after it).
    """
    if event.channel is Channel.SNS:
        # SNS signatures are checked when the certificate is at hand locally
        # (`[security] sns_certificate_dir`); parse never downloads.
        verdict = saved_input_verdict(raw, sns_certificate_dir, topic_arns)
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
    security, topics = _settings(getattr(args, "config", None))
    cert_dir = security.sns_certificate_dir or None
    code = 0
    for given, path in _inputs(args.paths):
        try:
            raw = (
                sys.stdin.buffer.read(security.max_message_bytes + 1)
                if path is None
                else read_input(path, security.max_message_bytes)
            )
        except InputError as err:
            sys.stdout.flush()  # keep stdout and stderr in input order on a tty
            print(f"mailsync: {escape(err)}", file=sys.stderr)
            code = err.exit_code
            continue
        event = parse_capped(raw, path, security)
        event = apply_trust(
            event,
            raw,
            path or Path("-"),
            require_trust=require_trust,
            sns_certificate_dir=cert_dir,
            topic_arns=topics,
        )
        _emit({"input": given, **event.to_json()})
    return code


def _inputs(paths: Sequence[str]) -> Iterator[tuple[str, Path | None]]:
    """(input as shown, path or None for standard input), folders expanded."""
    for given in paths:
        if given == "-":
            yield given, None
            continue
        path = Path(given)
        if path.is_dir():
            for child in files_in(path):
                yield str(child), child
        else:
            yield given, path


def parse_capped(raw: bytes, path: Path | None, security: SecuritySettings) -> Event:
    """`parse_bytes` under the same limits as live input: `[security]
    max_message_bytes` (`raw` may hold one byte more, see `read_input`) and
    the parse time cap (a worker process); an email's date is clamped to the
    file's mtime (standard input, `path` None: to now)."""
    too_big = check_size(raw, security)
    if too_big is not None:
        return Event.unrecognized(too_big)
    name = "" if path is None else path.name
    if is_json(raw, name):
        fn: Callable[[bytes], Event] = functools.partial(parse_bytes, name=name)
    else:
        fn = read_and_parse  # the one reading the daemon's trust check uses
    event = parse_with_timeout(fn, raw, security.parse_timeout_seconds)
    return clamp_occurred(event, None if path is None else received_at(path))


def _settings(given: Path | None) -> tuple[SecuritySettings, tuple[str, ...]]:
    """`[security]` and `[source.sqs] topic_arns` from `--config`, else from
    the default config when it exists and is valid; parse needs no config."""
    path = given or config.default_path()
    if given is None and not path.is_file():
        return SecuritySettings(), ()
    try:
        settings = config.load(path)
    except ConfigError:
        if given is not None:
            raise
        return SecuritySettings(), ()
    topics = settings.sqs.topic_arns if settings.sqs else ()
    return settings.security, topics


def _emit(obj: dict[str, object]) -> None:
    line = dumps(obj) + "\n"  # C1 and bidi controls \u-escaped
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is not None:
        # UTF-8 whatever the locale says: JSON Lines consumers expect UTF-8.
        sys.stdout.flush()
        buffer.write(line.encode("utf-8"))
        buffer.flush()
    else:
        sys.stdout.write(line)
