"""systemd `Type=notify` support without libsystemd.

`sd_notify("READY=1")` sends one datagram to the AF_UNIX socket named by
`$NOTIFY_SOCKET` (a path, or ``@name`` for the abstract namespace); it is a
no-op returning False when the variable is unset. The datagram protocol is the
stable interface (sd_notify(3), "Notes": reimplementing it is encouraged).
`watchdog_period()` is half of `WatchdogSec=` (from `$WATCHDOG_USEC`), the
interval at which `WATCHDOG=1` must be sent, or None when no watchdog is set.
"""

from __future__ import annotations

import os
import socket


def sd_notify(state: str) -> bool:
    """Send `state` (newline-separated KEY=VALUE lines); never raises."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr[0] == "@":
        addr = "\0" + addr[1:]
    elif addr[0] != "/":
        return False  # vsock addresses are for VMs managed by systemd; not ours
    try:
        with socket.socket(
            socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
        ) as s:
            s.connect(addr)
            s.sendall(state.encode())
    except OSError:
        return False
    return True


def watchdog_period() -> float | None:
    """Seconds between `WATCHDOG=1` pings (half of WatchdogSec), or None."""
    usec, pid = os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit():
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None  # the variables were meant for another process
    return int(usec) / 2e6
