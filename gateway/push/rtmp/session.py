"""One RTMP publish session without I/O: bytes from the centre in, bytes to send and events out.

The session goes handshake → connect → createStream → publish → publishing. :meth:`receive`
takes whatever the centre sent and returns what happened (:class:`Connected`,
:class:`StreamCreated`, :class:`Published`); replies it owes (C2, the next command, pongs,
acknowledgements) wait in :meth:`data_to_send`. A refusal, a failure status or anything
malformed raises :class:`~gateway.push.error.PushError` naming it, and the session is then
:attr:`failed`. It never reads a clock: timeouts are the caller's.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from gateway.media.packet import Packet, Track
from gateway.push.error import PushError
from gateway.push.publisher import PushUrl
from gateway.push.rtmp import amf0
from gateway.push.rtmp.amf0 import AmfValue
from gateway.push.rtmp.chunk import ChunkReader, ChunkWriter, Message, MessageType
from gateway.push.rtmp.handshake import Handshake
from gateway.push.rtmp.media import FlvMedia
from gateway.push.stage import SessionStage

__all__ = [
    "CHUNK_SIZE",
    "Connected",
    "Event",
    "Published",
    "RtmpSession",
    "StreamCreated",
    "split_path",
]

CHUNK_SIZE = 4096
FLASH_VERSION = "FMLE/3.0 (compatible; camera-gateway)"

CS_CONTROL = 2
CS_COMMAND = 3
CS_STREAM = 8
_PING_REQUEST = 6
_PING_RESPONSE = 7
_REFUSED = ("BadName", "Failed", "Rejected", "Denied", "Unauthorized")
_U32 = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Connected:
    """The centre accepted the application (connect)."""


@dataclass(frozen=True, slots=True)
class StreamCreated:
    stream_id: int


@dataclass(frozen=True, slots=True)
class Published:
    """The centre takes media (NetStream.Publish.Start)."""


Event = Connected | StreamCreated | Published


def split_path(path: str) -> tuple[str, str]:
    """``/app/stream/name?key=x`` → ``("app", "stream/name?key=x")``: the application is the first
    path segment, the stream name the rest with the query string (as FFmpeg sends it)."""
    path, sep, query = path.partition("?")
    app, _, name = path.lstrip("/").partition("/")
    return app, name + sep + query


class RtmpSession(SessionStage[Event]):
    """See the module; ``random`` gives the handshake's random bytes."""

    def __init__(
        self,
        url: PushUrl,
        tracks: tuple[Track, ...],
        *,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.media = FlvMedia(tracks)
        self.skipped = self.media.skipped
        self.app, self._name = split_path(url.path)
        host = f"[{url.host}]" if ":" in url.host else url.host
        self._tc_url = f"{url.scheme}://{host}:{url.port}/{self.app}"
        self._handshake = Handshake(random)
        self._reader = ChunkReader()
        self._writer = ChunkWriter(CHUNK_SIZE)
        super().__init__("handshake")  # then connect, createStream, publish, publishing
        self._awaited = 0
        self._transaction = 0
        self.stream_id = 0
        self._received = 0
        self._acked_at = 0
        self._ack_window = 0

    # -- the exchange --------------------------------------------------------------------------

    @property
    def publishing(self) -> bool:
        return self.stage == "publishing"

    @property
    def failed(self) -> bool:
        return self.stage == "failed"

    @property
    def waiting_for(self) -> str:
        """What the session awaits from the centre, in words for a timeout."""
        return "the RTMP handshake" if self.stage == "handshake" else self.stage

    def start(self) -> bytes:
        """C0 and C1; :class:`PushError` before anything is sent if RTMP cannot carry this."""
        self.media.check()
        if not self._name:
            raise PushError("the push URL has no stream name (rtmp://host/app/stream)")
        return self._handshake.start()

    def closed(self) -> PushError:
        """What the centre closing the connection now means."""
        stage, self.stage = self.stage, "failed"
        if stage == "connect":
            return PushError(
                f"the centre closed the connection after connect (application {self.app!r} "
                "refused?)"
            )
        if stage in ("publishing", "closed"):
            return PushError("the centre closed the connection")
        what = "the RTMP handshake" if stage == "handshake" else stage
        return PushError(f"the centre closed the connection during {what}")

    def _take(self, data: bytes) -> list[Event]:
        self._received += len(data)
        if not self._handshake.done:
            done = self._handshake.receive(data)
            if done is None:
                return []
            s1, data = done
            self._out += s1  # C2
            self._out += self._writer.message(
                CS_CONTROL, MessageType.SET_CHUNK_SIZE, 0, [_U32.pack(CHUNK_SIZE)], 0
            )
            connect: dict[str, AmfValue] = {
                "app": self.app,
                "type": "nonprivate",
                "flashVer": FLASH_VERSION,
                "tcUrl": self._tc_url,
            }
            self._command("connect", connect)
            self._awaited, self.stage = self._transaction, "connect"
        events: list[Event] = []
        for message in self._reader.feed(data):
            event = self._handle(message)
            if event is not None:
                events.append(event)
        if self._ack_window and self._received - self._acked_at >= self._ack_window:
            self._acked_at = self._received
            ack = [_U32.pack(self._received & 0xFFFFFFFF)]
            self._out += self._writer.message(CS_CONTROL, MessageType.ACK, 0, ack, 0)
        return events

    def _command(self, name: str, *args: AmfValue, stream: int = 0) -> None:
        self._transaction += 1
        payload = amf0.encode(name, self._transaction, *args)
        csid = CS_STREAM if stream else CS_COMMAND
        self._out += self._writer.message(csid, MessageType.COMMAND, 0, [payload], stream)

    def _handle(self, message: Message) -> Event | None:
        kind, payload = message.kind, message.payload
        if kind == MessageType.WINDOW_ACK_SIZE and len(payload) >= 4:
            self._ack_window = _U32.unpack_from(payload)[0]
        elif kind == MessageType.USER_CONTROL and len(payload) >= 6:
            if int.from_bytes(payload[:2], "big") == _PING_REQUEST:
                pong = [_PING_RESPONSE.to_bytes(2, "big") + payload[2:6]]
                self._out += self._writer.message(CS_CONTROL, MessageType.USER_CONTROL, 0, pong, 0)
        elif kind in (MessageType.COMMAND, MessageType.AMF3_COMMAND):
            body = payload[1:] if kind == MessageType.AMF3_COMMAND else payload
            try:
                values = amf0.decode(body)
            except amf0.AmfError as exc:
                raise PushError(f"malformed command from the centre ({exc})") from None
            if not values or not isinstance(values[0], str):
                raise PushError("malformed command from the centre (no name)")
            return self._on_command(values[0], values[1:])
        return None

    def _on_command(self, name: str, values: list[AmfValue]) -> Event | None:
        transaction = values[0] if values else None
        args = values[1:]
        if name in ("_result", "_error"):
            if not isinstance(transaction, float) or transaction != self._awaited:
                return None  # releaseStream, FCPublish: nothing to wait for
            return self._on_result(name == "_result", args)
        if name == "onStatus":
            status = next((v for v in args if isinstance(v, dict)), None)
            return None if status is None else self._on_status(status)
        if name == "close":
            return self._on_status({"level": "error", "code": "NetConnection.Connect.Closed"})
        return None

    def _on_result(self, ok: bool, args: list[AmfValue]) -> Event | None:
        if self.stage == "connect":
            if not ok:
                raise self._refusal(f"the centre refused application {self.app!r}", args)
            self._command("releaseStream", None, self._name)
            self._command("FCPublish", None, self._name)
            self._command("createStream", None)
            self._awaited, self.stage = self._transaction, "createStream"
            return Connected()
        if self.stage == "createStream":
            sid = args[1] if len(args) >= 2 else None
            if not ok or not isinstance(sid, float):
                raise self._refusal("the centre refused to create a stream", args)
            if not (math.isfinite(sid) and sid == int(sid) and 0 <= sid <= 0xFFFFFFFF):
                raise PushError(f"the centre gave an invalid stream id ({sid!r})")
            self.stream_id = int(sid)
            self._command("publish", None, self._name, "live", stream=self.stream_id)
            self._awaited, self.stage = self._transaction, "publish"
            return StreamCreated(self.stream_id)
        if self.stage == "publish" and not ok:
            raise self._refusal("the centre refused the stream", args)
        return None

    def _on_status(self, status: dict[str, AmfValue]) -> Event | None:
        code = str(status.get("code", ""))
        failure = status.get("level") == "error"
        if self.stage == "publish":
            if code == "NetStream.Publish.Start":
                self.stage = "publishing"
                self._out += self._media_headers()
                return Published()
            if failure or code.endswith(_REFUSED):
                raise self._refusal("the centre refused the stream", [status])
        elif failure:
            what = "the centre stopped the stream" if self.publishing else "the centre refused"
            raise self._refusal(what, [status])
        return None

    def _refusal(self, what: str, args: list[AmfValue]) -> PushError:
        info = next((a for a in args if isinstance(a, dict)), {})
        code = str(info.get("code", "") or "")
        description = str(info.get("description", "") or "")
        text = " ".join(f"{code} {description}".split())
        auth = any(word in text.lower() for word in ("auth", "unauthorized", "password"))
        text = self._redact(text)[:200]
        return PushError(f"{what}: {text}" if text else what, auth=auth)

    def _redact(self, text: str) -> str:
        """Server text with our stream name (which may be or hold a key) taken out."""
        name, _, query = self._name.partition("?")
        for secret, shortest in ((self._name, 1), (name, 8), (query, 8)):
            if len(secret) >= shortest:
                text = text.replace(secret, "<stream>")
        return text

    # -- media ---------------------------------------------------------------------------------

    def _media_headers(self) -> bytes:
        message, sid = self._writer.message, self.stream_id
        return b"".join(message(*body, sid) for body in self.media.headers())

    def send(self, packet: Packet) -> bytes:
        """The bytes that carry one packet (empty: nothing to send for it yet)."""
        if self.stage != "publishing":
            raise PushError("not publishing")
        bodies = self.media.bodies(packet)
        message, sid = self._writer.message, self.stream_id
        if len(bodies) == 1:
            return message(*bodies[0], sid)
        return b"".join(message(*body, sid) for body in bodies)

    def close(self) -> bytes:
        """FCUnpublish and deleteStream if publishing (empty otherwise); the session is over."""
        if not self.publishing:
            self.stage = "closed" if self.stage != "failed" else self.stage
            return b""
        self._command("FCUnpublish", None, self._name)
        self._command("deleteStream", None, self.stream_id)
        self.stage = "closed"
        return self.data_to_send()
