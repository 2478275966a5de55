"""The worker's side of the integrity watch: its state, its changes and its snapshots put into
channel messages for the supervisor (which journals and announces them)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from gateway.config import CameraConfig
from gateway.config.analysis import AnalysisConfig
from gateway.daemon.workers.messages import (
    SNAPSHOT_PART,
    ShiftReport,
    SnapshotFailed,
    SnapshotPart,
    TamperChanged,
    TamperReport,
)
from gateway.daemon.workers.pipeline import CameraRuntime
from gateway.telemetry.state import Shift, TamperStatus
from gateway.watch.analyser import Transition, zones_of
from gateway.watch.render import render
from gateway.watch.snapshot import Keyframe, Snapshot, SnapshotError

__all__ = ["WorkerIntegrity", "tamper_report"]

log = logging.getLogger(__name__)


class WorkerIntegrity:
    def __init__(self, camera: CameraConfig, analysis: AnalysisConfig, runtime: CameraRuntime):
        self.camera = camera
        self.analysis = analysis
        self.runtime = runtime
        self.zones = zones_of(camera.analysis)

    def render(self, keyframe: Keyframe) -> Snapshot:
        return render(
            keyframe,
            self.zones,
            width=self.analysis.snapshot_width,
            max_bytes=self.analysis.snapshot_max_bytes,
        )

    def snapshot(self, request: str) -> Iterator[SnapshotPart | SnapshotFailed]:
        """The camera's last keyframe as a masked JPEG, in pieces; or why there is none."""
        status = self.runtime.status
        watch = self.runtime.watch
        if watch is None:
            reason = "snapshots need the camera's integrity watch (analysis.enabled)"
            yield SnapshotFailed(request=request, reason=reason)
            return
        if status.state != "online":
            reason = f"camera {self.camera.id} is {status.state}: no current picture"
            yield SnapshotFailed(request=request, reason=reason)
            return
        keyframe = watch.latest
        if keyframe is None:
            yield SnapshotFailed(request=request, reason="no keyframe received yet")
            return
        try:
            snapshot = self.render(keyframe)
        except SnapshotError as exc:
            yield SnapshotFailed(request=request, reason=str(exc))
            return
        data = snapshot.jpeg
        count = max(1, -(-len(data) // SNAPSHOT_PART))
        for index in range(count):
            yield SnapshotPart(
                request=request,
                index=index,
                last=index == count - 1,
                data=data[index * SNAPSHOT_PART : (index + 1) * SNAPSHOT_PART],
                width=snapshot.width,
                height=snapshot.height,
                taken_at=snapshot.taken_at,
            )

    def changed(self, transition: Transition) -> TamperChanged:
        """On the watch's thread: the change, with the hashes of the snapshots around it."""
        status, change = transition.status, transition.change
        judgement = status.judgement
        moved = judgement.displacement
        shift = None if moved is None else Shift(moved.dx, moved.dy, moved.percent, moved.rotation)
        return TamperChanged(
            condition=change.condition,
            active=change.active,
            at=transition.after.at,
            state=status.state,
            shift=shift_report(shift),
            unmasked=status.unmasked,
            structure=min(1.0, max(0.0, judgement.measures.structure)),
            sharpness_ratio=judgement.sharpness_ratio,
            before_sha256=self._hash(transition.before),
            before_at=None if transition.before is None else transition.before.at,
            after_sha256=self._hash(transition.after),
            after_at=transition.after.at,
        )

    def _hash(self, keyframe: Keyframe | None) -> str | None:
        if keyframe is None:
            return None
        try:
            return self.render(keyframe).sha256
        except SnapshotError as exc:
            log.warning("camera %s: no snapshot of a keyframe to journal: %s", self.camera.id, exc)
            return None


def shift_report(shift: Shift | None) -> ShiftReport | None:
    if shift is None:
        return None
    return ShiftReport(dx=shift.dx, dy=shift.dy, percent=shift.percent, rotation=shift.rotation)


def tamper_report(tamper: TamperStatus) -> TamperReport:
    return TamperReport(
        state=tamper.state,
        since=tamper.since,
        conditions=tamper.conditions,  # type: ignore[arg-type]
        shift=shift_report(tamper.shift),
        privacy=tamper.privacy,
        unmasked=tamper.unmasked,
        error=tamper.error,
        keyframes=tamper.keyframes,
        analysed_at=tamper.analysed_at,
    )
