"""Resource limits on untrusted input: message size and parse time.

`check_size(raw, settings)` is called before any parsing and returns a reason
when the input exceeds `[security] max_message_bytes` (the pipeline then
quarantines it unparsed; `parse`, `replay` and `quarantine retry` refuse it).

`parse_with_timeout(fn, raw, seconds)` runs `fn(raw) -> Event` with a time
cap. A parse that exceeds it yields `Event.unrecognized("parse took longer
than N s")`. Why a process and not a thread or a signal: a Python thread
cannot be stopped, and neither a thread nor `SIGALRM` can interrupt a regular
expression running inside the C `re` engine, so a runaway parse would keep
burning CPU for ever. The parse therefore runs in a long-lived worker process
(started with "spawn", safe in a multi-threaded daemon); on a timeout the
worker is killed and a fresh one takes the next input.

`parse_many_with_timeout(fn, raws, seconds, on_event)` does the same for a
whole batch in one pipe message: the worker streams the events back one by
one, and `on_event(i, event)` runs in the caller for each as soon as it
arrives, while the worker already parses the next input (so parsing overlaps
the caller's own work, e.g. committing the previous event). Each input keeps
its own cap, counted from the arrival of the previous answer (the worker
started on input *i* when it sent answer *i-1*, so it always had at least
`seconds`); the input that overruns becomes `unrecognized`, the worker is
killed and the rest of the batch goes to a fresh one, so a hostile message
costs its batch at most `seconds`.

Workers come from a small pool (one per concurrent caller, at most
`POOL_SIZE`), so one source's slow batch never delays another source's parse.
`fn` must be a module-level function (it is sent to the worker by name);
`seconds <= 0` runs `fn` in the calling process without a cap.
"""

from __future__ import annotations

import atexit
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from mailsync.config import SecuritySettings
from mailsync.errors import TransientError
from mailsync.event import Event

ParseFn = Callable[[bytes], Event]
#: what one parse yields: the event, or the `TransientError` it raised (DNS
#: unavailable during the trust check: the input is retried later)
Parsed = Event | TransientError
OnEvent = Callable[[int, Parsed], None]

#: at most this many parse processes (callers beyond it wait for a free one)
POOL_SIZE = 4


def check_size(raw: bytes | int, settings: SecuritySettings) -> str | None:
    """Why an input of this size (`raw` or its length) is too large to
    parse, or None. The one size rule and reason for every entrance (the
    pipeline, also for a size known from IMAP RFC822.SIZE alone, `parse`,
    `replay`, `quarantine retry`); the limit is taken literally (the
    configuration refuses a limit that is not positive)."""
    size = raw if isinstance(raw, int) else len(raw)
    limit = settings.max_message_bytes
    if size > limit:
        return f"message is {size} bytes, over [security] max_message_bytes = {limit}"
    return None


def parse_with_timeout(fn: ParseFn, raw: bytes, seconds: float) -> Event:
    """`fn(raw)`, or `unrecognized` when it takes longer than `seconds`.

    An exception raised by `fn` is returned as an `unrecognized` event whose
    reason names it, so one bad input never stops a batch; a `TransientError`
    is raised again here.
    """
    result = parse_many_with_timeout(fn, [raw], seconds)[0]
    if isinstance(result, TransientError):
        raise result
    return result


def _call(fn: ParseFn, raw: bytes) -> tuple[str, Any]:
    """`fn(raw)` as one answer of the worker protocol."""
    try:
        return ("ok", fn(raw).to_record())
    except TransientError as err:
        return ("transient", str(err))
    except Exception as err:
        return ("error", f"{type(err).__name__}: {err}")


def _answer(status: str, payload: Any) -> Parsed:
    if status == "ok":
        return Event.from_record(payload)
    if status == "transient":
        return TransientError(payload)
    return Event.unrecognized(f"parser error: {payload}")


def parse_many_with_timeout(
    fn: ParseFn,
    raws: Sequence[bytes],
    seconds: float,
    on_event: OnEvent | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> list[Parsed]:
    """`fn(raw)` for every input, in order, each capped at `seconds`.

    `on_event(i, event)` (optional) is called in order as each event arrives.
    `meanwhile()` (optional) is called once, right after the inputs went to the
    worker: work of the caller's that overlaps the parse (the IMAP source
    fetches its next batch). An exception raised by either propagates (the
    worker is discarded first).
    """
    if seconds <= 0 or not raws:
        if meanwhile is not None:
            meanwhile()
        events: list[Parsed] = []
        for i, raw in enumerate(raws):
            event = _answer(*_call(fn, raw))
            events.append(event)
            if on_event is not None:
                on_event(i, event)
        return events
    with _POOL.worker() as worker:
        return worker.run(fn, raws, seconds, on_event, meanwhile)


def shutdown() -> None:
    """Stop the idle worker processes (they are restarted on demand)."""
    _POOL.stop()


def _serve(conn: Connection) -> None:
    """The worker's loop: receive (fn, raws), send back one answer per input."""
    while True:
        try:
            fn, raws = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        for raw in raws:
            reply = _call(fn, raw)
            try:
                conn.send(reply)
            except (OSError, ValueError):
                return


class _Worker:
    """One parse process, used by one caller at a time (see `_Pool`)."""

    def __init__(self) -> None:
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None

    def run(
        self,
        fn: ParseFn,
        raws: Sequence[bytes],
        seconds: float,
        on_event: OnEvent | None,
        meanwhile: Callable[[], None] | None,
    ) -> list[Parsed]:
        events: list[Parsed] = []
        try:
            while len(events) < len(raws):
                self._send(fn, raws[len(events) :])
                sent = time.monotonic()
                if meanwhile is not None:
                    meanwhile()
                    meanwhile = None
                self._collect(raws, seconds, on_event, events, sent)
        except BaseException:
            # Answers still in flight would be read as the next batch's.
            self._kill()
            raise
        return events

    def _send(self, fn: ParseFn, raws: Sequence[bytes]) -> None:
        request = (fn, list(raws))
        try:
            self._ensure().send(request)
        except (OSError, EOFError, ValueError):
            self._kill()  # a worker that died while idle: start another one
            self._ensure().send(request)

    def _collect(
        self,
        raws: Sequence[bytes],
        seconds: float,
        on_event: OnEvent | None,
        events: list[Parsed],
        previous: float,
    ) -> None:
        """Read answers until the batch is done or the worker had to go;
        `previous` is when the worker got the inputs."""
        conn = self._conn
        assert conn is not None
        while len(events) < len(raws):
            healthy = True
            event: Parsed
            if not conn.poll(max(0.0, previous + seconds - time.monotonic())):
                event = Event.unrecognized(f"parse took longer than {seconds:g} s")
                healthy = False
            else:
                try:
                    status, payload = conn.recv()
                except (EOFError, OSError):
                    # The worker died (e.g. out of memory) on this input.
                    event = Event.unrecognized("parser process died on this input")
                    healthy = False
                else:
                    previous = time.monotonic()
                    event = _answer(status, payload)
            if not healthy:
                self._kill()
            events.append(event)
            if on_event is not None:
                on_event(len(events) - 1, event)
            if not healthy:
                return

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


class _Pool:
    """Idle workers, handed to one caller at a time; at most `size` exist."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._count = 0

    @contextmanager
    def worker(self) -> Iterator[_Worker]:
        with self._cond:
            while not self._idle and self._count >= self.size:
                self._cond.wait()
            if self._idle:
                worker = self._idle.pop()
            else:
                worker = _Worker()
                self._count += 1
        try:
            yield worker
        finally:
            with self._cond:
                self._idle.append(worker)
                self._cond.notify()

    def stop(self) -> None:
        with self._cond:  # a busy worker is left to its caller
            for worker in self._idle:
                worker._kill()


_POOL = _Pool(POOL_SIZE)
atexit.register(shutdown)
