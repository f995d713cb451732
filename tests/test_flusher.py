"""The flush timing rules (`FlushSchedule`) on explicit clock values, and the
`Flusher` thread on the real clock."""

from __future__ import annotations

import threading
import time

from pytest import approx

from mailsync.crm.flusher import Flusher, FlushSchedule


def test_first_poke_after_quiet_flushes_at_once():
    s = FlushSchedule(interval=30, debounce=0.5, now=0)
    assert s.start(0)  # the start-up flush
    s.finished(0.1, ok=True)
    assert s.next_flush() == approx(30.1)
    s.poke(5.0)
    assert s.next_flush() == approx(5.0)
    assert s.start(5.0)


def test_burst_is_gathered_until_debounce_after_last_poke():
    s = FlushSchedule(interval=30, debounce=0.5, now=0)
    s.start(0)
    s.finished(0.0, ok=True)
    s.poke(10.0)  # leading edge
    assert s.start(10.0)
    s.poke(10.1)  # during the flush
    s.finished(10.2, ok=True)
    assert s.next_flush() == approx(10.7)  # calm: 0.5 s after the flush ended
    s.poke(10.4)
    s.poke(10.6)
    assert s.next_flush() == approx(11.1)  # 0.5 s after the last poke
    assert not s.start(11.0)
    assert s.start(11.1)
    s.finished(11.2, ok=True)
    assert s.next_flush() == approx(41.2)  # nothing pending: the clock only


def test_failure_makes_pokes_wait_for_the_interval():
    s = FlushSchedule(interval=30, debounce=0.5, now=0)
    s.start(0)
    s.finished(1.0, ok=False)
    for t in (2.0, 3.0, 10.0):
        s.poke(t)
        assert s.next_flush() == approx(31.0), t
    assert not s.start(30.9)
    assert s.start(31.0)
    s.finished(31.5, ok=True)
    s.poke(40.0)  # recovered: real time again
    assert s.next_flush() == approx(40.0)


def test_poke_during_failed_flush_waits_for_the_interval():
    s = FlushSchedule(interval=60, debounce=0.5, now=0)
    s.start(0)
    s.poke(0.2)
    s.finished(2.0, ok=False)
    assert s.next_flush() == approx(62.0)


def test_flusher_thread_flushes_on_poke_and_batches_a_burst():
    calls: list[float] = []
    flushed = threading.Event()

    def flush() -> bool:
        calls.append(time.monotonic())
        flushed.set()
        return True

    f = Flusher(flush, interval=3600, debounce=0.3).start()
    try:
        assert flushed.wait(5)  # the start-up flush
        time.sleep(0.4)
        flushed.clear()
        f.poke()
        assert flushed.wait(5)
        assert len(calls) == 2
        flushed.clear()
        for _ in range(10):  # a burst: one more flush, not ten
            f.poke()
            time.sleep(0.02)
        assert flushed.wait(5)
        time.sleep(0.6)
        assert len(calls) == 3
        assert f.alive()
    finally:
        f.stop()
    assert not f.alive()


def test_flusher_survives_a_failing_flush_and_does_not_spin():
    calls: list[int] = []

    def flush() -> bool:
        calls.append(1)
        raise RuntimeError("boom")

    f = Flusher(flush, interval=3600, debounce=0.01).start()
    try:
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(20):
            f.poke()
            time.sleep(0.01)
        assert calls == [1]  # held until the interval: no retry storm
        assert f.alive()
    finally:
        f.stop()
