"""`mailsync run [--once]` (contract section 1): the daemon, or one pass."""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType

from mailsync import config
from mailsync.daemon import Daemon
from mailsync.errors import StateError
from mailsync.log import configure
from mailsync.once import run_once
from mailsync.statedb import explain


def run(args: argparse.Namespace) -> int:
    path = args.config or config.default_path()
    settings = config.load(path)
    configure(settings.log)
    config.warn_if_world_readable(path)
    if not args.once:
        return Daemon(path, settings).run()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()  # finish the current message, commit, then exit

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        return run_once(settings, stop)
    except StateError as err:  # one line with the path and the fix
        raise StateError(explain(str(err), settings.state.path)) from None
