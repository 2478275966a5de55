"""One RTSP RECORD session without I/O: OPTIONS, ANNOUNCE, SETUP per track, RECORD, then RTP
interleaved over the same connection, keep-alives and RTCP sender reports.

:meth:`RtspSession.receive` takes whatever the centre sent; the next request, once an answer is
in, waits in :meth:`~RtspSession.data_to_send`. Times come from the caller (``now``, monotonic
seconds) and wall-clock times from the ``wall`` function it is given. A refusal, refused
credentials (one retry with them, never a loop) or anything malformed raises
:class:`~gateway.push.error.PushError` naming it.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from gateway.clock import wall_at
from gateway.media.packet import Packet, Track
from gateway.push.error import PushError
from gateway.push.publisher import PushUrl
from gateway.push.rtsp.auth import Credentials
from gateway.push.rtsp.messages import Response, StreamParser, request
from gateway.push.rtsp.rtp import RtpTrack, clock_rate, payload_type
from gateway.push.rtsp.sdp import RTSP_CODECS, describe
from gateway.push.stage import SessionStage

__all__ = ["Answered", "Recording", "RtspSession"]

SENDER_REPORT_EVERY = 5.0
_TIMEOUT = re.compile(r"timeout=(\d{1,9})")


@dataclass(frozen=True, slots=True)
class Answered:
    """The centre accepted a request of the setup."""

    method: str


@dataclass(frozen=True, slots=True)
class Recording:
    """RECORD accepted: the centre takes media."""


Event = Answered | Recording


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes = b""


class RtspSession(SessionStage[Event]):
    """See the module."""

    def __init__(
        self,
        url: PushUrl,
        tracks: tuple[Track, ...],
        *,
        wall: Callable[[float], float] = wall_at,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._url = url
        self._wall = wall
        self._random = random
        self.skipped = [t for t in tracks if t.codec not in RTSP_CODECS]
        carried = [t for t in tracks if t.codec in RTSP_CODECS]
        self._channels: dict[int, tuple[int, RtpTrack]] = {}
        self._sdp_tracks: list[tuple[Track, int]] = []
        for index, track in enumerate(carried):
            pt = payload_type(track.codec, track.sample_rate, track.channels, 96 + index)
            rtp = RtpTrack(track.codec, pt, clock_rate(track.codec, track.sample_rate))
            self._channels[track.index] = (2 * index, rtp)
            self._sdp_tracks.append((track, pt))
        self._parser = StreamParser()
        self._plan: list[_Request] = []
        self._current: _Request | None = None
        self._cseq = 0
        self._credentials: Credentials | None = None
        self.session_id: str | None = None
        self.keepalive = 60.0
        self._last_request: float | None = None
        self._last_report: float | None = None
        self._base: float | None = None
        super().__init__("OPTIONS")  # the method awaiting its answer; then recording

    @property
    def recording(self) -> bool:
        return self.stage == "recording"

    @property
    def waiting_for(self) -> str:
        return self.stage

    def start(self) -> bytes:
        """The first request; :class:`PushError` before anything is sent if RTSP cannot carry
        this camera."""
        if not any(t.kind == "video" for t, _ in self._sdp_tracks):
            raise PushError("no video track that RTSP can carry")
        base = self._url.request_url()
        sdp = describe(self._sdp_tracks, host=self._url.host).encode()
        self._plan = [
            _Request("OPTIONS", base, {}),
            _Request("ANNOUNCE", base, {"Content-Type": "application/sdp"}, sdp),
        ]
        for index, _ in enumerate(self._sdp_tracks):
            transport = f"RTP/AVP/TCP;unicast;interleaved={2 * index}-{2 * index + 1};mode=record"
            setup_url = f"{base.rstrip('/')}/streamid={index}"
            self._plan.append(_Request("SETUP", setup_url, {"Transport": transport}))
        self._plan.append(_Request("RECORD", base, {"Range": "npt=0.000-"}))
        self._next()
        return self.data_to_send()

    def closed(self) -> PushError:
        """What the centre closing the connection now means."""
        stage, self.stage = self.stage, "failed"
        if stage in ("recording", "closed"):
            return PushError("the centre closed the connection")
        return PushError(f"the centre closed the connection during {stage}")

    # -- requests and answers ------------------------------------------------------------------

    def _next(self) -> None:
        self._current = self._plan.pop(0)
        self.stage = self._current.method
        self._send(self._current)

    def _send(self, req: _Request) -> None:
        self._cseq += 1
        headers: dict[str, str] = {}
        if self.session_id:
            headers["Session"] = self.session_id
        if self._credentials is not None:
            headers["Authorization"] = self._credentials.header(req.method, req.url)
        headers.update(req.headers)
        self._out += request(req.method, req.url, self._cseq, headers, req.body)

    def _take(self, data: bytes) -> list[Event]:
        return [e for r in self._parser.feed(data) if (e := self._answer(r)) is not None]

    def _answer(self, response: Response) -> Event | None:
        req = self._current
        if req is None or self.stage != req.method:
            return None  # answers to keep-alives: nothing to act on
        if response.cseq is None:
            raise PushError(f"the centre answered {req.method} without a CSeq")
        if response.cseq != self._cseq:
            return None  # a late answer to an earlier request
        if response.status == 401 and self._credentials is None:
            if not self._url.username:
                raise PushError(f"{req.method}: the centre requires credentials", auth=True)
            self._credentials = Credentials.from_challenges(
                response.challenges, self._url.username, self._url.password or "", self._random
            )
            self._send(req)
            return None
        if response.status in (401, 403):
            raise PushError(
                f"{req.method}: credentials refused by the centre ({response.status})", auth=True
            )
        if response.status != 200:
            reason = response.reason[:80]
            raise PushError(f"{req.method} refused by the centre: {response.status} {reason}")
        if req.method == "SETUP":
            self._setup(response)
        if self._plan:
            self._next()
            return Answered(req.method)
        self._current = None
        self.stage = "recording"
        return Recording()

    def _setup(self, response: Response) -> None:
        session = response.headers.get("session")
        if session and self.session_id is None:
            value, _, params = session.partition(";")
            self.session_id = value.strip()[:256]
            timeout = _TIMEOUT.search(params)
            if timeout:
                self.keepalive = max(5.0, int(timeout.group(1)) / 2)

    # -- recording -----------------------------------------------------------------------------

    def send(self, packet: Packet, now: float) -> bytearray:
        """The interleaved RTP packets of one packet (with sender reports when they are due)."""
        entry = self._channels.get(packet.track)
        if entry is None:
            return bytearray()
        channel, rtp = entry
        if self._base is None:
            self._base = packet.seconds
        timestamp = rtp.timestamp(packet.pts * packet.scale - self._base)
        frames = rtp.interleaved(packet.data, timestamp, channel)
        last = self._last_report
        if packet.is_video and (last is None or now - last >= SENDER_REPORT_EVERY):
            self._last_report = now
            wall = self._wall(packet.received)
            for ch, track in self._channels.values():
                if track.packets:
                    report = track.sender_report(wall, track.last_timestamp)
                    frames += struct.pack("!cBH", b"$", ch + 1, len(report)) + report
        return frames

    def poll(self, now: float) -> bytes:
        """A keep-alive (OPTIONS) when one is due while recording; else nothing."""
        if not self.recording or not self.session_id:
            return b""
        if self._last_request is None:
            self._last_request = now
        elif now - self._last_request > self.keepalive:
            self._last_request = now
            self._send(_Request("OPTIONS", self._url.request_url(), {}))
        return self.data_to_send()

    def close(self) -> bytes:
        """TEARDOWN if the centre gave a session; the session is over."""
        self.stage = "failed" if self.stage == "failed" else "closed"
        if not self.session_id:
            return b""
        self._send(_Request("TEARDOWN", self._url.request_url(), {}))
        return self.data_to_send()
