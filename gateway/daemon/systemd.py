"""systemd integration: readiness and status (sd_notify), the watchdog, and journal logging.

Everything here is inert outside systemd: with no ``NOTIFY_SOCKET`` nothing is sent, and logs
go to the journal only when stderr is the journal stream systemd gave us (``JOURNAL_STREAM``).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading

__all__ = ["CameraFieldFilter", "Notifier", "journal_handler", "stderr_is_journal"]

log = logging.getLogger(__name__)


class Notifier:
    """Sends state to the service manager. ``watchdog_interval`` is how often to ping (None:
    no watchdog asked for).

    The datagrams are sent without waiting: a manager slow to read its socket (its queue holds
    10 datagrams) must never hold up the daemon. libsystemd's ``sd_notify`` waits in that case,
    and the Python binding does so holding the interpreter lock, which froze every thread.
    A datagram the socket cannot take now is dropped; the next status or ping follows within
    seconds.
    """

    def __init__(self) -> None:
        address = os.environ.get("NOTIFY_SOCKET", "")
        self.enabled = address.startswith(("/", "@"))
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        for_us = pid is None or pid == str(os.getpid())
        self.watchdog_interval = int(usec) / 2_000_000 if usec and for_us else None
        self._sock: socket.socket | None = None
        self._failed = False

    def send(self, *fields: str) -> None:
        if not self.enabled:
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(fields).encode(), socket.MSG_DONTWAIT, self._address)
        except OSError as exc:  # full, gone or restarting: never a reason to stop or wait
            if not self._failed:
                self._failed = True
                log.warning("cannot notify the service manager: %s", exc.strerror or exc)
            return
        self._failed = False

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def reloading(self) -> None:
        self.send("RELOADING=1", "STATUS=reloading the configuration")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")


def stderr_is_journal() -> bool:
    """True when systemd connected our stderr to the journal (``JOURNAL_STREAM=dev:inode``)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in stream.split(":"))
        stat = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (stat.st_dev, stat.st_ino) == (device, inode)


class CameraFieldFilter(logging.Filter):
    """Adds the journal fields ``CAMERA=`` and ``SITE=`` to every record.

    A camera's threads are named ``<camera id>/<role>``; the daemon's own threads are named
    ``gateway:<role>`` (a ``:`` no camera id may contain).
    """

    def __init__(self) -> None:
        super().__init__()
        self.site: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        name = threading.current_thread().name
        camera, slash, _ = name.partition("/")
        if slash and ":" not in camera:
            record.CAMERA = camera
        if self.site is not None:
            record.SITE = self.site
        return True


def journal_handler() -> logging.Handler:
    from systemd.journal import JournalHandler

    return JournalHandler(SYSLOG_IDENTIFIER="camera-gateway")  # type: ignore[no-any-return]
