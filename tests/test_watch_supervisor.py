"""The supervisor's side of camera integrity: the forward held back while a privacy mask is
missing and let go once it is back, snapshots put together from the worker's pieces, and the
export's reading of the journal for the periods a mask was missing."""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import CameraConfig
from gateway.daemon.workers.channel import Channel, channel_pair
from gateway.daemon.workers.handle import MASK_MISSING, WorkerHandle, WorkerProcess
from gateway.daemon.workers.messages import (
    MAX_SNAPSHOT,
    SNAPSHOT_PART,
    ForwardStart,
    ForwardStop,
    SnapshotFailed,
    SnapshotPart,
    TakeSnapshot,
    WorkerSettings,
)
from gateway.daemon.workers.snapshots import SnapshotRequests
from gateway.evidence.unmasked import MaskRecord, unmasked_periods
from gateway.forward.target import UplinkTarget
from gateway.watch.snapshot import SnapshotError

ZONE = {"name": "door", "points": [[0.6, 0.1], [0.9, 0.1], [0.9, 0.5]]}


def _camera(**analysis: Any) -> CameraConfig:
    return CameraConfig.model_validate(
        {"id": "hall", "url": "sim://hall", "analysis": {"privacy_zones": [ZONE], **analysis}}
    )


def _settings() -> WorkerSettings:
    return WorkerSettings(
        site_id="site",
        storage_root=Path("/nonexistent"),
        segment_duration=60.0,
        segment_max_bytes=1 << 20,
        memory_max=256 << 20,
        max_bitrate=0.0,
        forwarded=True,
    )


@pytest.fixture
def link() -> Iterator[tuple[WorkerHandle, Channel]]:
    ours, theirs = channel_pair()
    worker = Channel(theirs)
    handle = WorkerHandle(_camera(), _settings())
    now = time.monotonic()
    handle.process = WorkerProcess(
        pid=0, pidfd=-1, channel=Channel(ours), started=now, last_message=now
    )
    yield handle, worker
    worker.close()
    handle.process.channel.close()


def _received(worker: Channel) -> list[object]:
    out = []
    while (data := worker.recv(0.2)) is not None:
        out.append(pickle.loads(data))  # noqa: S301 - our own messages, from this test
    return out


TARGET = UplinkTarget(
    push_url="rtsp://centre.invalid/hall", display="centre", tls=None, connect_timeout=5.0
)


def test_a_missing_mask_holds_the_forward_and_its_return_lets_it_go(
    link: tuple[WorkerHandle, Channel],
) -> None:
    handle, worker = link
    assert handle.status.tamper.privacy == "unknown"  # no worker has vouched for the masks yet
    handle.start_forward("s1", TARGET, 5.0)
    assert [type(m) for m in _received(worker)] == [ForwardStart]
    assert handle.gate_forward() is None

    handle.status.tamper.privacy = "missing"
    assert handle.gate_forward() == "suspended"
    assert [type(m) for m in _received(worker)] == [ForwardStop]
    forward = handle.status.forward
    assert (forward.state, forward.suspended, forward.error) == (
        "suspended",
        MASK_MISSING,
        MASK_MISSING,
    )
    assert handle.forward_command is None  # a restarted worker would not push either
    assert handle.gate_forward() is None  # said once

    handle.status.tamper.privacy = "unknown"  # a new worker, not yet sure: still held
    assert handle.gate_forward() is None
    assert handle.status.forward.suspended == MASK_MISSING

    handle.status.tamper.privacy = "ok"
    assert handle.gate_forward() == "resumed"
    [again] = _received(worker)
    assert isinstance(again, ForwardStart) and again.session == "s1"
    assert handle.status.forward.suspended is None
    assert handle.forward_command is not None


def test_a_session_opened_while_held_is_not_sent_and_is_announced(
    link: tuple[WorkerHandle, Channel],
) -> None:
    handle, worker = link
    handle.status.tamper.privacy = "missing"
    assert handle.gate_forward() is None  # no session: only the status shows it
    handle.start_forward("s2", TARGET, 5.0)
    assert _received(worker) == []
    assert handle.gate_forward() == "suspended"
    assert handle.status.forward.state == "suspended"


def test_forward_when_unmasked_keeps_forwarding() -> None:
    handle = WorkerHandle(_camera(forward_when_unmasked=True), _settings())
    handle.start_forward("s3", TARGET, 5.0)
    handle.status.tamper.privacy = "missing"
    assert handle.gate_forward() is None
    assert handle.forward_command is not None


def _part(request: str, index: int, data: bytes, *, last: bool) -> SnapshotPart:
    return SnapshotPart(
        request=request, index=index, last=last, data=data, width=64, height=36, taken_at=1.0
    )


def _answering(requests: SnapshotRequests, answer: Any) -> Any:
    """A ``send`` that answers each request, on another thread, with ``answer(request)``."""

    def send(message: object) -> bool:
        assert isinstance(message, TakeSnapshot)

        def run() -> None:
            for piece in answer(message.request):
                requests.arrived(piece)

        threading.Thread(target=run).start()
        return True

    return send


def test_a_snapshot_is_put_together_from_its_pieces_in_order() -> None:
    requests = SnapshotRequests()
    jpeg = bytes(range(256)) * 500  # 128 000 bytes: three pieces

    def answer(request: str) -> list[SnapshotPart]:
        pieces = [jpeg[i : i + SNAPSHOT_PART] for i in range(0, len(jpeg), SNAPSHOT_PART)]
        return [_part(request, i, p, last=i == len(pieces) - 1) for i, p in enumerate(pieces)]

    snapshot = requests.take("hall", _answering(requests, answer), 5.0)
    assert snapshot.jpeg == jpeg and (snapshot.width, snapshot.height) == (64, 36)


def test_a_worker_that_says_why_not_or_misbehaves_gives_a_clear_error() -> None:
    requests = SnapshotRequests()
    with pytest.raises(SnapshotError, match="no keyframe received yet"):
        requests.take(
            "hall",
            _answering(
                requests, lambda r: [SnapshotFailed(request=r, reason="no keyframe received yet")]
            ),
            5.0,
        )
    with pytest.raises(SnapshotError, match="malformed"):
        requests.take("hall", _answering(requests, lambda r: [_part(r, 1, b"x", last=True)]), 5.0)
    too_much = b"x" * SNAPSHOT_PART
    count = MAX_SNAPSHOT // SNAPSHOT_PART + 1
    with pytest.raises(SnapshotError, match="malformed"):
        requests.take(
            "hall",
            _answering(
                requests, lambda r: [_part(r, i, too_much, last=False) for i in range(count)]
            ),
            5.0,
        )
    with pytest.raises(SnapshotError, match="within 0 s"):
        requests.take("hall", lambda _message: True, 0.2)
    with pytest.raises(SnapshotError, match="did not take"):
        requests.take("hall", lambda _message: False, 0.2)
    requests.arrived(_part("stale", 0, b"x", last=True))  # nobody waits: dropped


def _entry(event: str, time: str, **fields: Any) -> dict[str, Any]:
    return {"event": event, "time": time, **fields}


def test_the_journal_gives_the_periods_a_mask_was_missing() -> None:
    mask = {"camera": "hall", "condition": "privacy_mask_missing"}
    entries = [
        _entry("daemon_started", "2026-12-01T10:00:00Z"),
        _entry(
            "camera_integrity",
            "2026-12-01T10:05:01Z",
            at="2026-12-01T10:05:00Z",
            active=True,
            **mask,
        ),
        _entry(
            "camera_integrity",
            "2026-12-01T10:06:00Z",
            at="2026-12-01T10:06:00Z",
            camera="hall",
            condition="covered",
            active=True,
        ),
        _entry(
            "camera_integrity",
            "2026-12-01T10:07:00Z",
            at="2026-12-01T10:07:00Z",
            active=True,
            camera="other",
            condition="privacy_mask_missing",
        ),
        _entry(
            "camera_integrity",
            "2026-12-01T10:10:00Z",
            at="2026-12-01T10:10:00Z",
            active=False,
            **mask,
        ),
        _entry(
            "camera_integrity",
            "2026-12-01T11:00:00Z",
            at="2026-12-01T11:00:00Z",
            active=True,
            **mask,
        ),
        _entry("daemon_started", "2026-12-01T11:30:00Z"),  # left open when the daemon stopped
        _entry(
            "camera_integrity",
            "2026-12-01T12:00:00Z",
            at="2026-12-01T12:00:00Z",
            active=True,
            **mask,
        ),  # still open at the end of the range
    ]
    from gateway.clock import parse_utc_iso as t

    day = (t("2026-12-01T00:00:00Z"), t("2026-12-01T23:00:00Z"))
    assert unmasked_periods(entries, "hall", *day) == [
        (t("2026-12-01T10:05:00Z"), t("2026-12-01T10:10:00Z")),
        (t("2026-12-01T11:00:00Z"), t("2026-12-01T11:30:00Z")),
        (t("2026-12-01T12:00:00Z"), t("2026-12-01T23:00:00Z")),
    ]
    narrow = (t("2026-12-01T10:08:00Z"), t("2026-12-01T10:50:00Z"))
    assert unmasked_periods(entries, "hall", *narrow) == [
        (t("2026-12-01T10:08:00Z"), t("2026-12-01T10:10:00Z"))
    ]
    assert unmasked_periods(entries, "other", *narrow) == [narrow]
    warnings: list[str] = []
    shown = MaskRecord(lambda: entries).missing("hall", *narrow, warnings)
    assert shown == [{"start": "2026-12-01T10:08:00.000Z", "end": "2026-12-01T10:10:00.000Z"}]
    assert "may show private areas" in warnings[0]
