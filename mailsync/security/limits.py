"""Resource limits on untrusted input: message size and parse time.

`check_size(raw, settings)` is called before any parsing and returns a reason
when the input exceeds `[security] max_message_bytes` (the pipeline then
quarantines it unparsed).

`parse_with_timeout(fn, raw, seconds)` runs `fn(raw) -> Event` with a time
cap. A parse that exceeds it yields `Event.unrecognized("parse took longer
than N s")`. Why a process and not a thread or a signal: a Python thread
cannot be stopped, and neither a thread nor `SIGALRM` can interrupt a regular
expression running inside the C `re` engine, so a runaway parse would keep
burning CPU for ever. The parse therefore runs in one long-lived worker
process (started with "spawn", safe in a multi-threaded daemon); on a timeout
the worker is killed and a fresh one starts with the next message. The
cost is one pipe round trip per message plus a one-time start-up. `fn` must
be a module-level function (it is sent to the worker by name); `seconds <= 0`
runs `fn` in the calling process without a cap.
"""

from __future__ import annotations

import atexit
import multiprocessing
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from mailsync.config import SecuritySettings
from mailsync.event import Event

ParseFn = Callable[[bytes], Event]


def check_size(raw: bytes, settings: SecuritySettings) -> str | None:
    """Return why `raw` is too large to parse, or None when it is within limits."""
    limit = settings.max_message_bytes
    if limit > 0 and len(raw) > limit:
        return (
            f"message is {len(raw):,} bytes, over the limit of {limit:,} "
            "([security] max_message_bytes)"
        )
    return None


def parse_with_timeout(fn: ParseFn, raw: bytes, seconds: float) -> Event:
    """`fn(raw)`, or `unrecognized` when it takes longer than `seconds`.

    An exception raised by `fn` is returned as an `unrecognized` event whose
    reason names it, so one bad input never stops a batch.
    """
    if seconds <= 0:
        return fn(raw)
    return _WORKER.run(fn, raw, seconds)


def shutdown() -> None:
    """Stop the worker process (it is restarted on demand)."""
    _WORKER.stop()


def _serve(conn: Connection) -> None:
    """The worker's loop: receive (fn, raw), send back the event record."""
    while True:
        try:
            fn, raw = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        try:
            event = fn(raw)
            reply: tuple[str, Any] = ("ok", event.to_record())
        except Exception as err:
            reply = ("error", f"{type(err).__name__}: {err}")
        try:
            conn.send(reply)
        except (OSError, ValueError):
            return


class _Worker:
    """One parse process, used by one caller at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None

    def run(self, fn: ParseFn, raw: bytes, seconds: float) -> Event:
        with self._lock:
            conn = self._ensure()
            try:
                conn.send((fn, raw))
            except (OSError, EOFError):
                self._kill()
                conn = self._ensure()
                conn.send((fn, raw))
            if not conn.poll(seconds):
                self._kill()
                return Event.unrecognized(f"parse took longer than {seconds:g} s")
            try:
                status, payload = conn.recv()
            except (EOFError, OSError):
                # The worker died (e.g. out of memory); the next call restarts it.
                self._kill()
                return Event.unrecognized("parser process died on this input")
        if status == "ok":
            return Event.from_record(payload)
        return Event.unrecognized(f"parser error: {payload}")

    def _ensure(self) -> Connection:
        if self._proc is not None and self._proc.is_alive() and self._conn:
            return self._conn
        self._kill()
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_serve, args=(child,), name="mailsync-parse", daemon=True
        )
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        return parent

    def _kill(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(5)
            self._proc = None

    def stop(self) -> None:
        with self._lock:
            self._kill()


_WORKER = _Worker()
atexit.register(shutdown)
