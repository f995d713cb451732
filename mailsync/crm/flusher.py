"""When the daemon flushes the outbox to the CRM: on new events, and on a clock.

Sources call `Flusher.poke()` after a pass made new events durable (the pass
has committed them, so the flush that follows sees them). One thread runs
every flush, so flushes never overlap and one Salesforce session serves them
(`mailsync.crm.connection`). The timing is `FlushSchedule`:

- a poke after a quiet spell (no poke and no flush in the last `debounce`
  seconds) flushes at once: one mail reaches the CRM as soon as it is durable;
- pokes that follow within `debounce` s of a poke or of a flush are gathered:
  the next flush starts once `debounce` s passed without a poke (and at least
  `debounce` s after the previous flush ended), and takes everything that
  arrived meanwhile in one batch;
- every `interval` s (`[crm] flush_interval`) a flush runs anyway: the
  catch-up for events written by other processes (`replay`, `quarantine
  retry`), dead letters queued for retry, and a backfill still in progress
  (a source pokes once its pass is over, so a long backfill is written in a
  few large batches, keeping the Salesforce API budget);
- after a failed flush (CRM outage, API limit, paused writes) pokes no longer
  hasten anything until `interval` s passed: an outage costs one attempt per
  interval, never a busy loop.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class FlushSchedule:
    """The pure timing rules above, on a monotonic clock in seconds."""

    def __init__(self, interval: float, debounce: float, now: float) -> None:
        self.interval = interval
        self.debounce = debounce
        self.periodic = now  #: next flush on the clock (the first one at start)
        self.due: float | None = None  #: next flush asked for by pokes
        self.last_poke = -math.inf
        self.calm_until = -math.inf  #: no poke-driven flush before (throttle)
        self.hold_until = -math.inf  #: after a failure: pokes wait for the clock

    def poke(self, now: float) -> None:
        """New events are durable."""
        quiet = now - self.last_poke >= self.debounce and now >= self.calm_until
        self.last_poke = now
        if self.due is None and quiet:
            due = now  # leading edge: nothing to gather, do not wait
        else:
            due = max(now + self.debounce, self.calm_until)  # gather
        self.due = max(due, self.hold_until)

    def next_flush(self) -> float:
        """When the next flush is due (monotonic seconds)."""
        return self.periodic if self.due is None else min(self.due, self.periodic)

    def start(self, now: float) -> bool:
        """True (and the pokes so far are served) if a flush is due at `now`."""
        if now < self.next_flush():
            return False
        self.due = None
        return True

    def finished(self, now: float, ok: bool) -> None:
        """A flush ended at `now`; `ok` False for a CRM failure or pause."""
        self.periodic = now + self.interval
        self.calm_until = now + self.debounce
        if not ok:
            self.hold_until = now + self.interval
        if self.due is not None:  # pokes during the flush: gather them next
            self.due = max(self.due, self.calm_until, self.hold_until)


class Flusher:
    """Runs `flush()` (True when it succeeded) on its own thread, as
    `FlushSchedule` says. `poke()` may be called from any thread."""

    def __init__(
        self,
        flush: Callable[[], bool],
        *,
        interval: float,
        debounce: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._flush = flush
        self._clock = clock
        self._cond = threading.Condition()
        self._schedule = FlushSchedule(interval, debounce, clock())
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="crm", daemon=True)
        self.flushes = 0  #: flushes run so far

    def start(self) -> Flusher:
        self._thread.start()
        return self

    def poke(self) -> None:
        """New outbox events are durable: flush soon."""
        with self._cond:
            self._schedule.poke(self._clock())
            self._cond.notify()

    def stop(self) -> None:
        """Stop after the flush in progress (if any) has finished."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    now = self._clock()
                    if self._schedule.start(now):
                        break
                    self._cond.wait(self._schedule.next_flush() - now)
                if self._stopping:
                    return
            ok = False
            try:
                ok = self._flush()
            except Exception:  # the caller logs; the thread must go on
                log.exception("CRM flush failed")
            finally:
                self.flushes += 1
                with self._cond:
                    self._schedule.finished(self._clock(), ok)
