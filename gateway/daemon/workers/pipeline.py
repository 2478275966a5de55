"""One camera's packet path, assembled in its worker process: status, fan-out stream, pull
thread, recorder, the integrity watch, and the forward to the centre while a session is open."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from gateway.config import CameraConfig
from gateway.config.analysis import AnalysisConfig
from gateway.forward.feed import ForwardFeed, main_stream_feed, substream_feed
from gateway.forward.pusher import FORWARD_QUEUE_BYTES, GOP_CACHE_BYTES, Pusher
from gateway.forward.target import ForwardTotals, UplinkTarget
from gateway.recorder.recorder import Recorder, SegmentStore
from gateway.source.pull import PullLoop
from gateway.stream import Reader, Stream
from gateway.telemetry.events import EventSink
from gateway.telemetry.state import CameraStatus, TamperStatus
from gateway.watch.analyser import QUEUE_BYTES, QUEUE_SECONDS, IntegrityWatch, Transition
from gateway.watch.analyser import settings_of as watch_settings

__all__ = ["RECORDER_QUEUE_BYTES", "RECORDER_QUEUE_SECONDS", "CameraRuntime"]

log = logging.getLogger(__name__)

RECORDER_QUEUE_SECONDS = 10.0
RECORDER_QUEUE_BYTES = 64 * 1024 * 1024
RECORDER_BATCH = 0.1
"""The recorder takes its packets ten times a second: a fraction of the thread wake-ups, and at
most 0.1 s more to lose on a crash (within the 1 s promised)."""
FORWARD_STOP_WAIT = 1.5
"""Seconds a forward stop waits for its pusher's thread, on the worker's main thread: well
within the supervisor's wait for the answer (2 s) and its silence rule (5 s), so a pusher
slow to close cannot get its worker killed; the thread is left to finish by itself."""


@dataclass(slots=True)
class _ForwardSession:
    id: str
    stream: Stream
    reader: Reader
    drops_reported: int = 0


class CameraRuntime:
    """Built from the camera's configuration; :meth:`start` pulls, :meth:`stop` finishes."""

    def __init__(
        self,
        camera: CameraConfig,
        *,
        storage: SegmentStore,
        segment_duration: float,
        forwarded: bool,
        events: EventSink,
        max_bitrate: float = 0.0,
        analysis: AnalysisConfig | None = None,
        on_tamper: Callable[[Transition], None] | None = None,
    ) -> None:
        self.config = camera
        self.status = CameraStatus(id=camera.id, url=camera.display_url)
        main_forwarded = forwarded and not camera.forward_url
        self.stream = Stream(camera.id, gop_cache_bytes=GOP_CACHE_BYTES if main_forwarded else 0)
        self.source: ForwardFeed = (
            substream_feed(camera) if camera.forward_url else main_stream_feed(self.stream)
        )
        self._forward: _ForwardSession | None = None
        if camera.record:
            recorder = Recorder(
                camera.id,
                storage,
                segment_duration=segment_duration,
                status=self.status.recorder,
                events=events,
            )
            self.stream.add_reader(
                recorder,
                max_seconds=RECORDER_QUEUE_SECONDS,
                max_bytes=RECORDER_QUEUE_BYTES,
                batch=RECORDER_BATCH,
            )
        else:
            self.status.recorder.enabled = False
        self.worker: PullLoop | None = None
        if camera.record or main_forwarded:
            self.worker = PullLoop(
                camera, self.stream, self.status, events=events, max_bitrate=max_bitrate
            )
        else:
            self.status.set_state("disabled")
            log.info("camera %s: its main stream is neither recorded nor forwarded", camera.id)
        self.watch: IntegrityWatch | None = None
        self._watched: Stream | None = None
        if analysis is not None and camera.analysis.enabled:
            self.watch = IntegrityWatch(
                camera.id,
                watch_settings(analysis, camera.analysis),
                on_tamper or (lambda _transition: None),
            )

    @property
    def tamper(self) -> TamperStatus:
        """The integrity watch's view, or ``off`` when the camera is not analysed."""
        if self.watch is not None:
            return self.watch.status
        return self.status.tamper

    def start(self) -> None:
        if self.worker is not None:
            self.worker.start()
        watch = self.watch
        if watch is None:
            return
        if self.config.analysis.source == "substream":
            self._watched = self.source.acquire()
        elif self.worker is not None:
            self._watched = self.stream
        else:
            watch.status.error = "not analysed: its main stream is not pulled (record is off)"
            return
        self._watched.add_reader(
            watch, max_seconds=QUEUE_SECONDS, max_bytes=QUEUE_BYTES, inline=watch.take_now
        )

    def readers(self) -> list[Reader]:
        """Every consumer of the camera, the forward's (maybe on a substream) included."""
        readers = list(self.stream.readers)
        session = self._forward
        if session is not None and session.reader not in readers:
            readers.append(session.reader)
        watched = self._watched
        if watched is not None and watched is not self.stream:
            readers.extend(r for r in watched.readers if r.consumer is self.watch)
        return readers

    # -- forward -------------------------------------------------------------------------------

    def start_forward(self, session_id: str, target: UplinkTarget, queue: float) -> None:
        """Attach a pusher to the camera's (sub)stream; it replays the GOP in progress."""
        if self._forward is not None:
            self.stop_forward()
        stream = self.source.acquire()
        pusher = Pusher(self.config.id, target, self.status.forward)
        reader = stream.add_reader(
            pusher,
            max_seconds=queue,
            max_bytes=FORWARD_QUEUE_BYTES,
            replay_gop=True,
            inline=pusher.try_now,
        )
        self._forward = _ForwardSession(session_id, stream, reader)
        status = self.status.forward
        if status.state == "off":
            status.state = "connecting"

    def stop_forward(self) -> ForwardTotals:
        session, self._forward = self._forward, None
        if session is not None:
            session.stream.remove_reader(session.reader)
            if not session.reader.join(FORWARD_STOP_WAIT):
                log.warning(
                    "camera %s: the forward's pusher is slow to close; left to finish",
                    self.config.id,
                )
            self.count_forward_drops(session)
            self.source.release()
        status = self.status.forward
        return ForwardTotals(status.bytes_sent, status.dropped_frames, status.reconnects)

    def count_forward_drops(self, session: _ForwardSession | None = None) -> None:
        """Fold the forward reader's dropped frames into the forward status."""
        session = session or self._forward
        if session is None:
            return
        drops = session.reader.stats.dropped_frames
        self.status.forward.dropped_frames += drops - session.drops_reported
        session.drops_reported = drops

    # -- stop ----------------------------------------------------------------------------------

    def stop(self, timeout: float) -> bool:
        """Stop pulling, end the forward, let the recorder finish its segment; True if in
        time. A pull thread still inside FFmpeg is left to the process's exit."""
        if self.worker is not None:
            self.worker.stop()
        if self._forward is not None:
            self.stop_forward()
        if self._watched is not None and self._watched is not self.stream:
            self._watched = None
            self.source.release()
        return self.stream.close(timeout=timeout)
