"""`mailsync run [--once]` (contract section 1): the daemon, or one pass.

Before any processing: the config is loaded, every configured secret is read
(`mailsync.preflight.check_secrets`; a missing one exits 2), and the daemon
takes the state store's lock (`mailsync.lock.DaemonLock`; a second daemon on
the same state store exits 2 naming the PID that holds it). `--once` takes no
lock, so it may run beside a daemon.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

from mailsync import config
from mailsync.daemon import Daemon
from mailsync.errors import StateError
from mailsync.lock import DaemonLock
from mailsync.log import configure, kv
from mailsync.once import run_once
from mailsync.preflight import check_secrets
from mailsync.statedb import explain

log = logging.getLogger("mailsync.run")


def run(args: argparse.Namespace) -> int:
    path, origin = config.locate(args.config)
    settings = config.load(path)
    configure(settings.log)
    log.debug("config loaded", extra=kv(path=path, origin=origin))
    config.warn_about_permissions(path, settings)
    check_secrets(settings)
    if not args.once:
        lock = DaemonLock(settings.state.path)
        try:
            lock.acquire()
        except StateError as err:  # as the daemon reports a state failure
            log.critical(explain(str(err), settings.state.path))
            return 1
        try:
            return Daemon(path, settings).run()
        finally:
            lock.release()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()  # finish the current message, commit, then exit

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        return run_once(settings, stop)
    except StateError as err:  # one line with the path and the fix
        raise StateError(explain(str(err), settings.state.path)) from None
