"""One camera as the supervisor sees it: a stop of its forward waits for the worker's counters,
and an answer that comes after the wait gave up is dropped, not kept."""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import CameraConfig
from gateway.daemon.workers.channel import Channel, channel_pair
from gateway.daemon.workers.handle import WorkerHandle, WorkerProcess
from gateway.daemon.workers.messages import ForwardStop, ForwardStopped, WorkerSettings


@pytest.fixture
def handle() -> Iterator[tuple[WorkerHandle, Channel]]:
    camera = CameraConfig.model_validate({"id": "hall", "url": "sim://hall"})
    settings = WorkerSettings(
        site_id="site",
        storage_root=Path("/nonexistent"),
        segment_duration=60.0,
        segment_max_bytes=1 << 20,
        memory_max=256 << 20,
        max_bitrate=0.0,
        forwarded=True,
    )
    ours, theirs = channel_pair()
    worker = Channel(theirs)
    camera_handle = WorkerHandle(camera, settings)
    now = time.monotonic()
    camera_handle.process = WorkerProcess(
        pid=0, pidfd=-1, channel=Channel(ours), started=now, last_message=now
    )
    yield camera_handle, worker
    worker.close()
    camera_handle.process.channel.close()


def _answer_after(
    handle: WorkerHandle, worker: Channel, delay: float, sent: int
) -> threading.Thread:
    def answer() -> None:
        data = worker.recv(5)
        assert data is not None
        stop = pickle.loads(data)  # noqa: S301 - our own message, from this test
        assert isinstance(stop, ForwardStop)
        time.sleep(delay)
        handle.forward_replied(
            ForwardStopped(session=stop.session, bytes_sent=sent, dropped_frames=2, reconnects=1)
        )

    thread = threading.Thread(target=answer)
    thread.start()
    return thread


def test_a_stop_returns_the_counters_the_worker_answers(
    handle: tuple[WorkerHandle, Channel],
) -> None:
    camera, worker = handle
    answering = _answer_after(camera, worker, 0.05, sent=12345)
    totals = camera.stop_forward("s1", timeout=2.0)
    answering.join(5)
    assert (totals.bytes_sent, totals.dropped_frames, totals.reconnects) == (12345, 2, 1)


def test_an_answer_after_the_wait_gave_up_is_dropped(
    handle: tuple[WorkerHandle, Channel],
) -> None:
    camera, worker = handle
    answering = _answer_after(camera, worker, 2.0, sent=999)
    started = time.monotonic()
    totals = camera.stop_forward("s2", timeout=0.1)
    assert time.monotonic() - started < 1.5, "the stop waits for its timeout, not the answer"
    assert totals.bytes_sent == 0, "the latest known counters, the answer not being in"
    answering.join(5)
    # Nothing is left waiting for a stop that is over: late answers cannot pile up.
    assert camera._replies == {}, "the leak this guards against is internal"
