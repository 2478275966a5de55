"""Rate-limited logging: a flood is one line, then one summary a minute, never a full journal."""

from __future__ import annotations

import logging
import time

import pytest

from gateway.ratelimit import RateLimitedLog


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logger() -> logging.Logger:
    logger = logging.getLogger("test_ratelimit")
    logger.setLevel(logging.DEBUG)
    return logger


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "test_ratelimit"]


def test_the_first_is_logged_the_rest_of_the_minute_summarised(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    clock = _Clock()
    limited = RateLimitedLog(
        logger, "%d more rejected in the last minute", clock=clock, timer=False
    )

    assert limited.log("rejected: %s", "first")
    for n in range(500):
        clock.now += 0.1
        assert not limited.log("rejected: %s", n)
    limited.flush()  # the minute is not over: nothing yet
    assert _messages(caplog) == ["rejected: first"]

    clock.now = 1060.0
    limited.flush()

    assert _messages(caplog) == ["rejected: first", "500 more rejected in the last minute"]
    assert limited.suppressed == 0


def test_a_flood_that_goes_on_gets_one_summary_a_minute_and_no_full_line(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    clock = _Clock()
    limited = RateLimitedLog(
        logger, "%d more rejected in the last minute", clock=clock, timer=False
    )

    for tenth in range(3 * 600):  # three minutes, ten a second
        clock.now = 1000.0 + tenth / 10
        limited.log("rejected")
        clock.now = 1000.0 + (tenth + 1) / 10
        limited.flush()

    assert _messages(caplog) == [
        "rejected",
        "599 more rejected in the last minute",
        "600 more rejected in the last minute",
        "600 more rejected in the last minute",
    ]


def test_after_a_quiet_minute_the_next_one_is_logged_in_full(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    clock = _Clock()
    limited = RateLimitedLog(logger, "%d more", clock=clock, timer=False)

    limited.log("one")
    clock.now += 61
    limited.log("two")

    assert _messages(caplog) == ["one", "two"]


def test_the_summary_comes_by_itself_when_the_interval_ends(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    limited = RateLimitedLog(logger, "%d more rejected", interval=0.2)
    try:
        for _ in range(10):
            limited.log("rejected")
        deadline = time.monotonic() + 5
        while len(_messages(caplog)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        limited.close()

    assert _messages(caplog) == ["rejected", "9 more rejected"]
