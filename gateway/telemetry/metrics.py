"""Prometheus exposition: a collector that reads the daemon's live state at scrape time.

Nothing here sits on the packet path: counters live in :mod:`gateway.telemetry.state` and the
fan-out's reader statistics, and are turned into metric families only when Prometheus asks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from gateway import __version__
from gateway.telemetry.state import CameraStatus, StorageUsage, camera_state

__all__ = ["TAMPER_KINDS", "MetricsSnapshot", "metrics_registry", "serve_metrics"]

log = logging.getLogger(__name__)
P = "camera_gateway_"


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    site_id: str
    cameras: Sequence[CameraStatus]
    storage: StorageUsage | None
    max_age: float = 0.0
    mqtt_connected: bool | None = None
    """None when MQTT is not configured."""
    clock_synchronized: bool | None = None


class _GatewayCollector(Collector):
    def __init__(self, snapshot: Callable[[], MetricsSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        info = InfoMetricFamily(P + "build", "Version of camera-gateway.")
        info.add_metric([], {"version": __version__, "site": snap.site_id})
        yield info
        yield from _camera_metrics(snap)
        if snap.storage is not None:
            yield from _storage_metrics(snap.storage)
            yield GaugeMetricFamily(
                P + "storage_max_age_seconds", "Configured maximum age.", value=snap.max_age
            )
        if snap.mqtt_connected is not None:
            yield GaugeMetricFamily(
                P + "mqtt_connected",
                "1 while connected to the MQTT broker.",
                value=1.0 if snap.mqtt_connected else 0.0,
            )
        if snap.clock_synchronized is not None:
            yield GaugeMetricFamily(
                P + "clock_synchronized",
                "1 if the kernel says the clock is NTP-synchronised.",
                value=1.0 if snap.clock_synchronized else 0.0,
            )


def _camera_metrics(snap: MetricsSnapshot) -> Iterator[Metric]:
    cam = ["camera"]
    up = GaugeMetricFamily(
        P + "camera_up", "1 if the camera is delivering video (not stalled).", labels=cam
    )
    frames = CounterMetricFamily(P + "camera_frames", "Video frames received.", labels=cam)
    received = CounterMetricFamily(
        P + "camera_bytes_received", "Bytes received from the camera.", labels=cam
    )
    reconnects = CounterMetricFamily(
        P + "camera_reconnects", "Sessions started after the first one.", labels=cam
    )
    last = GaugeMetricFamily(
        P + "camera_last_frame_timestamp_seconds", "UNIX time of the last frame.", labels=cam
    )
    fps = GaugeMetricFamily(P + "camera_fps", "Frames per second, recent.", labels=cam)
    segments = CounterMetricFamily(P + "recording_segments", "Segments finished.", labels=cam)
    written = CounterMetricFamily(
        P + "recording_bytes_written", "Bytes in finished segments.", labels=cam
    )
    active = GaugeMetricFamily(
        P + "recording_active",
        "1 while recording; after a storage error, once media reaches the disk again.",
        labels=cam,
    )
    enabled = GaugeMetricFamily(
        P + "recording_enabled", "1 if the camera is configured to be recorded.", labels=cam
    )
    dropped = CounterMetricFamily(
        P + "queue_dropped_frames",
        "Video frames dropped because a consumer fell behind.",
        labels=["camera", "consumer"],
    )
    no_keyframe = CounterMetricFamily(
        P + "recording_no_keyframe_cuts",
        "Segments cut at their size or time bound because the camera sent no keyframe.",
        labels=cam,
    )
    restarts = CounterMetricFamily(
        P + "worker_restarts",
        "Camera worker processes restarted after a failure (wedged, over memory, crashed).",
        labels=cam,
    )
    resident = GaugeMetricFamily(
        P + "worker_resident_bytes", "Resident memory of the camera's worker.", labels=cam
    )
    now = time.time()
    for status in snap.cameras:
        label = [status.id]
        up.add_metric(label, 1.0 if camera_state(status, now) == "online" else 0.0)
        frames.add_metric(label, status.frames)
        received.add_metric(label, status.bytes_received)
        reconnects.add_metric(label, status.reconnects)
        if status.last_frame is not None:
            last.add_metric(label, status.last_frame)
        fps.add_metric(label, status.fps)
        segments.add_metric(label, status.recorder.segments)
        written.add_metric(label, status.recorder.bytes_written)
        active.add_metric(label, 1.0 if status.recorder.recording else 0.0)
        enabled.add_metric(label, 1.0 if status.recorder.enabled else 0.0)
        for consumer, count in status.dropped_frames.items():
            dropped.add_metric([status.id, consumer], count)
        no_keyframe.add_metric(label, status.recorder.no_keyframe_cuts)
        restarts.add_metric(label, status.worker.restarts)
        if status.worker.pid is not None:
            resident.add_metric(label, status.worker.resident_bytes)
    yield from (up, frames, received, reconnects, last, fps, segments, written, active, enabled)
    yield from (dropped, no_keyframe, restarts, resident)
    yield from _forward_metrics(snap)
    yield from _compliance_metrics(snap)
    yield from _tamper_metrics(snap)


def _forward_metrics(snap: MetricsSnapshot) -> Iterator[Metric]:
    """The forward's state as three gauges (``live``; a session open; held back while a
    privacy mask is missing) and its counters."""
    cam = ["camera"]
    fwd_up = GaugeMetricFamily(
        P + "forward_up", "1 if the camera is being sent to the centre.", labels=cam
    )
    fwd_active = GaugeMetricFamily(
        P + "forward_active",
        "1 while a forward session is open (whether or not the push is live).",
        labels=cam,
    )
    fwd_suspended = GaugeMetricFamily(
        P + "forward_suspended",
        "1 while a forward session is open but sends no picture because a privacy mask is "
        "missing (recording goes on).",
        labels=cam,
    )
    fwd_bytes = CounterMetricFamily(
        P + "forward_bytes_sent", "Bytes sent to the centre.", labels=cam
    )
    fwd_dropped = CounterMetricFamily(
        P + "forward_dropped_frames",
        "Frames not sent because the uplink was slower than the camera.",
        labels=cam,
    )
    fwd_reconnects = CounterMetricFamily(
        P + "forward_reconnects", "Push connections re-established.", labels=cam
    )
    for status in snap.cameras:
        label = [status.id]
        forward = status.forward
        fwd_up.add_metric(label, 1.0 if forward.state == "live" else 0.0)
        fwd_active.add_metric(label, 1.0 if forward.state != "off" else 0.0)
        fwd_suspended.add_metric(label, 1.0 if forward.state == "suspended" else 0.0)
        fwd_bytes.add_metric(label, forward.bytes_sent)
        fwd_dropped.add_metric(label, forward.dropped_frames)
        fwd_reconnects.add_metric(label, forward.reconnects)
    yield from (fwd_up, fwd_active, fwd_suspended, fwd_bytes, fwd_dropped, fwd_reconnects)


def _compliance_metrics(snap: MetricsSnapshot) -> Iterator[Metric]:
    rules = ["camera", "rule"]
    compliant = GaugeMetricFamily(
        P + "camera_compliance_ok",
        "0 while the camera breaks a legal stream minimum (rule fps or resolution), else 1.",
        labels=rules,
    )
    ratio = GaugeMetricFamily(
        P + "camera_compliance_ratio",
        "Compliant share of the last 24 h of the rule, counting only time the camera was online.",
        labels=rules,
    )
    for status in snap.cameras:
        for rule, verdict in status.compliance.items():
            compliant.add_metric([status.id, rule], 1.0 if verdict.ok else 0.0)
            if verdict.ratio is not None:
                ratio.add_metric([status.id, rule], verdict.ratio)
    yield from (compliant, ratio)


TAMPER_KINDS: tuple[str, ...] = ("covered", "defocused", "moved")
"""The ``kind`` label of ``camera_tamper``: three series per analysed camera, always all three
(a kind going back to 0 is seen, not lost)."""


def _tamper_metrics(snap: MetricsSnapshot) -> Iterator[Metric]:
    """The integrity watch, for analysed cameras only (``tamper.state`` not ``off``): a camera
    with ``analysis.enabled: false`` exports none of these series, rather than a 0 that would
    read as "checked and fine"."""
    cam = ["camera"]
    tamper = GaugeMetricFamily(
        P + "camera_tamper",
        "1 while the condition is raised on the camera's picture (kind covered, defocused or "
        "moved; raised once it held analysis.min_duration), else 0.",
        labels=["camera", "kind"],
    )
    displacement = GaugeMetricFamily(
        P + "camera_displacement_ratio",
        "Shift of the scene from the learned view as a fraction of the picture's width; 0 when "
        "none is measured (no keyframe recognised yet, the picture covered, or a camera turned "
        'so far that its view is not recognised: camera_tamper{kind="moved"} says that).',
        labels=cam,
    )
    learning = GaugeMetricFamily(
        P + "camera_analysis_learning",
        "1 while the camera's reference view is being learned (no tamper verdict yet).",
        labels=cam,
    )
    keyframes = CounterMetricFamily(
        P + "camera_analysed_keyframes",
        "Keyframes analysed by the camera's integrity watch.",
        labels=cam,
    )
    mask = GaugeMetricFamily(
        P + "privacy_mask_ok",
        "0 while a privacy zone of the camera shows content (its mask is missing), 1 once all "
        "were seen masked for analysis.min_duration; absent for cameras without privacy zones "
        "and while not judged.",
        labels=cam,
    )
    for status in snap.cameras:
        watch = status.tamper
        if watch.state == "off":
            continue
        label = [status.id]
        raised = {*watch.conditions, watch.state}
        for kind in TAMPER_KINDS:
            tamper.add_metric([status.id, kind], 1.0 if kind in raised else 0.0)
        shift = watch.shift
        displacement.add_metric(label, 0.0 if shift is None else shift.percent / 100.0)
        learning.add_metric(label, 1.0 if watch.state == "learning" else 0.0)
        keyframes.add_metric(label, watch.keyframes)
        if watch.privacy in ("ok", "missing"):
            mask.add_metric(label, 1.0 if watch.privacy == "ok" else 0.0)
    yield from (tamper, displacement, learning, keyframes, mask)


def _storage_metrics(usage: StorageUsage) -> Iterator[Metric]:
    yield GaugeMetricFamily(P + "storage_used_bytes", "Bytes of recordings.", value=usage.used)
    yield GaugeMetricFamily(P + "storage_quota_bytes", "Configured quota.", value=usage.quota)
    if usage.free is not None:
        yield GaugeMetricFamily(
            P + "storage_free_bytes", "Free bytes on the storage filesystem.", value=usage.free
        )
    if usage.oldest is not None:
        yield GaugeMetricFamily(
            P + "storage_oldest_recording_timestamp_seconds",
            "UNIX time when the oldest kept recording starts.",
            value=usage.oldest,
        )
    evictions = CounterMetricFamily(
        P + "storage_evictions", "Segments deleted by retention.", labels=["reason"]
    )
    for reason in ("quota", "max_age", "min_free"):
        evictions.add_metric([reason], usage.evictions.get(reason, 0))
    yield evictions
    yield GaugeMetricFamily(
        P + "storage_error", "1 if the storage is failing.", value=1.0 if usage.error else 0.0
    )
    yield CounterMetricFamily(
        P + "storage_quarantined_files",
        "Unusable files moved to the quarantine folder since the daemon started.",
        value=usage.quarantined,
    )
    yield GaugeMetricFamily(
        P + "seal_error",
        "1 while finished segments cannot be sealed (signing key missing or unreadable, journal "
        "not writable): recording goes on, sealing catches up once fixed.",
        value=1.0 if usage.seal_error else 0.0,
    )


def metrics_registry(snapshot: Callable[[], MetricsSnapshot]) -> CollectorRegistry:
    """Everything ``/metrics`` exposes, read from ``snapshot()`` at each scrape: the daemon's
    own series and the supervisor's ``process_*``."""
    registry = CollectorRegistry()
    registry.register(_GatewayCollector(snapshot))
    ProcessCollector(registry=registry)
    return registry


def serve_metrics(host: str, port: int, snapshot: Callable[[], MetricsSnapshot]) -> bool:
    """Serve ``/metrics`` on host:port in a background thread; False (logged) if it cannot."""
    registry = metrics_registry(snapshot)
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.error(
            "metrics: cannot listen on %s:%d: %s; continuing without", host, port, exc.strerror
        )
        return False
    log.info("metrics on http://%s:%d/metrics", host if ":" not in host else f"[{host}]", port)
    return True
