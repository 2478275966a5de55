"""Capped exponential backoff with jitter: the one place that spaces out retries."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """``initial``, ``initial*factor``, … up to ``maximum`` seconds, each shortened by up to
    ``jitter`` (a fraction) so that many cameras failing together do not retry in step."""

    def __init__(
        self, *, initial: float, maximum: float, factor: float = 2.0, jitter: float = 0.2
    ) -> None:
        if not 0 < initial <= maximum:
            raise ValueError("backoff needs 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self.attempts = 0

    def next(self) -> float:
        """The delay before the next attempt."""
        delay = min(self.maximum, self.initial * self.factor**self.attempts)
        self.attempts += 1
        return delay * (1.0 - self.jitter * random.random())  # noqa: S311 - jitter, not a secret

    def reset(self) -> None:
        self.attempts = 0
