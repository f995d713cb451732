"""Progress of long work (a backfill, `replay` of a folder, `quarantine retry
--all`): a bar on a terminal, counts in the log and in systemd's STATUS=.

`Progress(job, total, unit)` is a context manager; call `advance(n)` as items
finish. Work of fewer than `MIN_TOTAL` items shows nothing (an IDLE pass of
three mails is not news). Otherwise:

- stderr is a terminal (and `bar` is not False): a tqdm bar on stderr; log
  lines written meanwhile go above it (`tqdm.contrib.logging`), and
  `echo(text)` prints a line above it;
- else (systemd's journal, a pipe, a file): an INFO line
  ``<job> progress source=... done=N total=M`` at the start, at every tenth
  of the work and at least every `LOG_EVERY` s, and the text
  ``<job> N/M <unit>`` to `on_status` at most once a second (default: sd_notify
  ``STATUS=``; the daemon folds it into its own status line) and None at the
  end.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from mailsync.log import kv
from mailsync.notify import sd_notify
from mailsync.textsafe import escape

log = logging.getLogger(__name__)

MIN_TOTAL = 100  #: smaller jobs show no progress
LOG_STEPS = 10  #: log lines per job (one every tenth)
LOG_EVERY = 30.0  #: seconds: a log line at least this often
STATUS_EVERY = 1.0  #: seconds between STATUS= updates

StatusSink = Callable[[str | None], None]


def _notify_status(text: str | None) -> None:
    if text is not None:
        sd_notify(f"STATUS={text}")


class Progress:
    """One long job's progress (see the module docstring)."""

    def __init__(
        self,
        job: str,
        total: int,
        unit: str = "items",
        *,
        source: str | None = None,
        bar: bool | None = None,
        on_status: StatusSink | None = None,
    ) -> None:
        self.job, self.total, self.unit, self.source = job, max(0, total), unit, source
        self.done = 0
        self.active = self.total >= MIN_TOTAL
        self._status = on_status or _notify_status
        self._step = max(1, math.ceil(self.total / LOG_STEPS))
        self._next_line = self._step
        self._last_line = self._last_status = time.monotonic()
        self._bar: Any = None
        self._redirect: Any = None
        if not self.active:
            return
        if bar is None:
            bar = sys.stderr.isatty()
        if bar:
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()
            label = f"{job} {source}" if source else job
            self._bar = tqdm(
                total=self.total, desc=label, unit=f" {unit}", file=sys.stderr
            )
        else:
            self._line()
            self._status(self.text())

    def text(self) -> str:
        """``backfill 1200/5000 messages``."""
        return f"{self.job} {self.done}/{self.total} {self.unit}"

    def advance(self, n: int = 1) -> None:
        """`n` more items are finished."""
        n = max(0, min(n, self.total - self.done))
        self.done += n
        if not self.active or not n:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if (
            self.done >= self._next_line
            or self.done == self.total
            or now - self._last_line >= LOG_EVERY
        ):
            self._line()
            while self._next_line <= self.done:
                self._next_line += self._step
        if now - self._last_status >= STATUS_EVERY or self.done == self.total:
            self._last_status = now
            self._status(self.text())

    def echo(self, text: str) -> None:
        """Print `text` on stderr (above the bar, if one is shown), every
        control character escaped: it names files and reasons from strangers."""
        text = escape(text, layout=True)
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._redirect.__exit__(None, None, None)
        elif self.active:
            self._status(None)
        self.active = False

    def _line(self) -> None:
        self._last_line = time.monotonic()
        log.info(
            f"{self.job} progress",
            extra=kv(source=self.source, done=self.done, total=self.total),
        )

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


#: how sources make a `Progress` (the daemon passes one without a bar that
#: reports into its status line)
ProgressFactory = Callable[..., Progress]
