"""Rate-limited logging: the first of a burst in full, then one summary line a minute.

A client that floods the daemon (refused commands, connections over the limit) must not fill
the journal, nor hide the rest of the log: the first occurrence is logged as it is, later ones
within the interval are only counted, and when the interval ends a single line says how many
there were (``37 more rejected in the last minute``). While the flood goes on, that summary
comes once per interval; once it stops, the next occurrence is logged in full again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["RateLimitedLog"]

INTERVAL = 60.0
"""Seconds between two lines about the same kind of event: one a minute is readable in the
journal and still shows within the minute that a flood is going on."""


class RateLimitedLog:
    """Logs the first event of a burst, counts the others, and summarises them each interval.

    ``summary`` is the summary line's format with one ``%d`` for the count, e.g. ``"%d more
    forward commands rejected in the last minute"``. The summary is written by a timer at the end
    of the interval (one short-lived thread per interval, only while events are being counted),
    or by :meth:`flush`.
    """

    def __init__(
        self,
        logger: logging.Logger,
        summary: str,
        *,
        level: int = logging.WARNING,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        timer: bool = True,
    ) -> None:
        self._logger = logger
        self._summary = summary
        self._level = level
        self._interval = interval
        self._clock = clock
        self._use_timer = timer
        self._lock = threading.Lock()
        self._window_end: float | None = None
        self._count = 0
        self._timer: threading.Timer | None = None

    @property
    def suppressed(self) -> int:
        """Events counted but not yet summarised."""
        return self._count

    def log(self, message: str, *args: object, exc_info: bool = False) -> bool:
        """Log this event unless the current interval already logged one; True if it was."""
        with self._lock:
            now = self._clock()
            if self._window_end is None or (now >= self._window_end and self._count == 0):
                self._window_end = now + self._interval
                logged = True
            else:
                self._count += 1
                logged = False
                if self._use_timer and self._timer is None:
                    self._arm(self._window_end - now)
        if logged:
            self._logger.log(self._level, message, *args, exc_info=exc_info)
        return logged

    def flush(self) -> None:
        """Write the summary if the interval is over (the timer calls this)."""
        with self._lock:
            self._timer = None
            now = self._clock()
            if self._window_end is None or now < self._window_end:
                if self._use_timer and self._count and self._window_end is not None:
                    self._arm(self._window_end - now)
                return
            count, self._count = self._count, 0
            # A flood still going on keeps the window open: the next line is its next summary.
            self._window_end = now + self._interval if count else None
        if count:
            self._logger.log(self._level, self._summary, count)

    def close(self) -> None:
        """Cancel a pending summary timer (at stop)."""
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _arm(self, delay: float) -> None:
        timer = threading.Timer(max(0.0, delay), self.flush)
        timer.name = "gateway:log-summary"
        timer.daemon = True
        self._timer = timer
        timer.start()
