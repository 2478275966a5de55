"""RTMP push (connect, createStream, publish; H.264 and AAC in FLV bodies), written for this daemon.

Spoken over a socket from :func:`~gateway.forward.connection.open_uplink`, so RTMPS gets the same
certificate checks as everything else. Simple handshake (what FFmpeg, nginx-rtmp and MediaMTX
accept), outgoing chunk size 4096, one ``sendall`` per message.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.forward.connection import Outbox, PushError
from gateway.forward.flv import (
    AAC_FRAME,
    AmfValue,
    EcmaArray,
    aac_sequence_header,
    amf_decode,
    amf_encode,
    avc_config_record,
    avc_decoder_config,
    avc_frame,
    avc_sequence_header,
)
from gateway.forward.publisher import PushUrl
from gateway.media.bitstream.h264 import parameter_sets
from gateway.media.packet import Packet, Track

__all__ = ["CHUNK_SIZE", "RtmpPublisher", "split_path"]

CHUNK_SIZE = 4096
FLASH_VERSION = "FMLE/3.0 (compatible; camera-gateway)"
_HANDSHAKE = 1536
_CLOSE_WITHIN = 0.9
_MAX_HELD = 256 * 1024

# chunk streams
_CS_CONTROL = 2
_CS_COMMAND = 3
_CS_AUDIO = 4
_CS_DATA = 5
_CS_VIDEO = 6
_CS_STREAM = 8

# message types
_SET_CHUNK_SIZE = 1
_ABORT = 2
_ACK = 3
_USER_CONTROL = 4
_WINDOW_ACK_SIZE = 5
_AUDIO = 8
_VIDEO = 9
_AMF3_COMMAND = 17
_DATA = 18
_COMMAND = 20

_PING_REQUEST = 6
_PING_RESPONSE = 7

_REFUSED = ("BadName", "Failed", "Rejected", "Denied", "Unauthorized")
_U32 = struct.Struct(">I")
_MESSAGE_HEADER_LENGTHS = (11, 7, 3, 0)


def split_path(path: str) -> tuple[str, str]:
    """``/app/stream/name?key=x`` → ``("app", "stream/name?key=x")``: the application is the first
    path segment, the stream name the rest with the query string (as FFmpeg sends it)."""
    path, sep, query = path.partition("?")
    app, _, name = path.lstrip("/").partition("/")
    return app, name + sep + query


@dataclass(slots=True)
class _InStream:
    """Receiving state of one chunk stream."""

    timestamp: int = 0
    delta: int = 0
    length: int = 0
    kind: int = 0
    stream: int = 0
    extended: bool = False
    partial: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True, slots=True)
class _Message:
    kind: int
    stream: int
    timestamp: int
    payload: bytes


class _ChunkReader:
    """Reassembles the server's chunks into messages (any chunk type, size and stream)."""

    def __init__(self) -> None:
        self.chunk_size = 128
        self._buffer = bytearray()
        self._streams: dict[int, _InStream] = {}

    def feed(self, data: bytes) -> list[_Message]:
        buf = self._buffer
        buf += data
        messages: list[_Message] = []
        pos = 0
        while True:
            consumed = self._chunk(buf, pos, messages)
            if consumed == 0:
                break
            pos += consumed
        del buf[:pos]
        return messages

    def _chunk(self, buf: bytearray, pos: int, messages: list[_Message]) -> int:
        """Parse one chunk at ``pos``; return its size, or 0 if it is not complete yet."""
        start = pos
        basic = _basic_header(buf, pos)
        if basic is None:
            return 0
        fmt, csid, pos = basic
        size = _MESSAGE_HEADER_LENGTHS[fmt]
        if pos + size > len(buf):
            return 0
        stream = self._streams.get(csid)
        if stream is None:
            stream = self._streams[csid] = _InStream()
        header = bytes(buf[pos : pos + size])
        pos += size
        ts_field = int.from_bytes(header[:3], "big") if fmt < 3 else 0
        extended = ts_field == 0xFFFFFF if fmt < 3 else stream.extended
        if extended:
            if pos + 4 > len(buf):
                return 0
            ts_field = _U32.unpack_from(buf, pos)[0]
            pos += 4
        new_message = not stream.partial
        length, kind, msid = stream.length, stream.kind, stream.stream
        if fmt <= 1:
            length = int.from_bytes(header[3:6], "big")
            kind = header[6]
        if fmt == 0:
            msid = int.from_bytes(header[7:11], "little")
        need = min(self.chunk_size, length - len(stream.partial))
        if pos + need > len(buf):
            return 0
        # The whole chunk is here: commit the header.
        stream.extended = extended if fmt < 3 else stream.extended
        stream.length, stream.kind, stream.stream = length, kind, msid
        if fmt == 0:
            stream.timestamp, stream.delta = ts_field, 0
        elif fmt < 3:
            stream.delta = ts_field
            stream.timestamp = (stream.timestamp + ts_field) & 0xFFFFFFFF
        elif new_message:
            stream.timestamp = (stream.timestamp + stream.delta) & 0xFFFFFFFF
        stream.partial += buf[pos : pos + need]
        pos += need
        if len(stream.partial) >= length:
            payload = bytes(stream.partial)
            stream.partial.clear()
            if kind == _SET_CHUNK_SIZE and len(payload) >= 4:
                self.chunk_size = max(1, _U32.unpack_from(payload)[0] & 0x7FFFFFFF)
            elif kind == _ABORT and len(payload) >= 4:
                aborted = self._streams.get(_U32.unpack_from(payload)[0])
                if aborted is not None:
                    aborted.partial.clear()
            messages.append(_Message(kind, msid, stream.timestamp, payload))
        return pos - start


def _basic_header(buf: bytearray, pos: int) -> tuple[int, int, int] | None:
    """Chunk type, chunk stream id and where the message header starts; None if incomplete."""
    if pos >= len(buf):
        return None
    fmt, csid = buf[pos] >> 6, buf[pos] & 0x3F
    pos += 1
    if csid < 2:
        width = csid + 1
        if pos + width > len(buf):
            return None
        csid = 64 + buf[pos] + (buf[pos + 1] << 8 if width == 2 else 0)
        pos += width
    return fmt, csid, pos


class RtmpPublisher:
    """One RTMP publish session; see :class:`~gateway.forward.publisher.Publisher`.

    Carries the first H.264 video track and the first AAC audio track that has its
    AudioSpecificConfig; anything else is in :attr:`skipped`. Video starts at the first keyframe;
    timestamps are milliseconds since the first packet sent. A video packet without a slice
    (parameter sets or SEI that the camera sent apart from the picture) is held and sent in front
    of the next one, so that each picture is one FLV tag.
    """

    def __init__(
        self, sock: socket.socket, url: PushUrl, tracks: tuple[Track, ...], *, timeout: float
    ) -> None:
        self._sock = sock
        self._timeout = timeout
        sock.settimeout(timeout)
        self._outbox = Outbox(sock)
        self._tracks = tracks
        self._video: Track | None = next(
            (t for t in tracks if t.kind == "video" and t.codec == "h264"), None
        )
        self._audio: Track | None = next(
            (t for t in tracks if t.kind == "audio" and t.codec == "aac" and t.extradata), None
        )
        self.skipped = [t for t in tracks if t is not self._video and t is not self._audio]
        self._app, self._name = split_path(url.path)
        host = f"[{url.host}]" if ":" in url.host else url.host
        self._tc_url = f"{url.scheme}://{host}:{url.port}/{self._app}"
        self._reader = _ChunkReader()
        self._out: dict[int, tuple[int, int]] = {}
        self._stream_id = 0
        self._transaction = 0
        self._results: dict[int, tuple[str, list[AmfValue]]] = {}
        self._statuses: list[dict[str, AmfValue]] = []
        self._received = 0
        self._acked_at = 0
        self._ack_window = 0
        self._publishing = False
        self._broken = False
        self._closed = False
        # media
        self._origin: int | None = None
        self._scales: dict[int, tuple[int, int]] = {
            t.index: (t.time_base.numerator * 1000, t.time_base.denominator) for t in tracks
        }
        self._last_ms: dict[int, int] = {}
        self._avc_config: bytes | None = None
        self._video_started = False
        self._held: tuple[bytes, bool] | None = None

    # -- Publisher -----------------------------------------------------------------------------

    def start(self) -> None:
        video = next((t for t in self._tracks if t.kind == "video"), None)
        if video is not None and self._video is None:
            raise PushError(f"{video.codec_name} cannot be sent over RTMP; use rtsp:// or rtsps://")
        if self._video is None and self._audio is None:
            raise PushError("no track that RTMP can carry (H.264 video, AAC audio)")
        if not self._name:
            raise PushError("the push URL has no stream name (rtmp://host/app/stream)")
        deadline = time.monotonic() + self._timeout
        self._handshake(deadline)
        self._write(
            self._message(_CS_CONTROL, _SET_CHUNK_SIZE, 0, [_U32.pack(CHUNK_SIZE)], 0)
            + self._command(
                "connect",
                {
                    "app": self._app,
                    "type": "nonprivate",
                    "flashVer": FLASH_VERSION,
                    "tcUrl": self._tc_url,
                },
            )
        )
        name, args = self._wait_result(self._transaction, "connect", deadline)
        if name == "_error":
            raise self._refusal(f"the centre refused application {self._app!r}", args)
        self._write(
            self._command("releaseStream", None, self._name)
            + self._command("FCPublish", None, self._name)
            + self._command("createStream", None)
        )
        name, args = self._wait_result(self._transaction, "createStream", deadline)
        if name == "_error" or len(args) < 2 or not isinstance(args[1], float):
            raise self._refusal("the centre refused to create a stream", args)
        self._stream_id = int(args[1])
        publish = self._command("publish", None, self._name, "live", stream=self._stream_id)
        self._write(publish)
        self._wait_publish(self._transaction, deadline)
        self._publishing = True
        self._send_headers()

    @property
    def ready(self) -> bool:
        return self._outbox.ready

    @property
    def bytes_sent(self) -> int:
        return self._outbox.bytes_sent

    def send(self, packet: Packet, *, wait: bool = True) -> None:
        if not self._publishing:
            raise PushError("not publishing")
        video = self._video
        if video is not None and packet.track == video.index:
            self._send_video(packet, video, wait)
        elif self._audio is not None and packet.track == self._audio.index:
            ms = self._ms(packet.track, packet.dts)
            msg = self._message(_CS_AUDIO, _AUDIO, ms, [AAC_FRAME, packet.data], self._stream_id)
            self._write(msg, wait=wait)

    def poll(self) -> None:
        if self._closed:
            return
        if self._outbox.pending:
            self._write(b"")
        chunks, closed = self._read_available()
        for data in chunks:
            self._received_data(data)
        self._check_statuses()
        if closed:
            self._broken = True
            raise PushError("the centre closed the connection")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._publishing and not self._broken:
            with contextlib.suppress(OSError, ValueError):
                self._goodbye(time.monotonic() + _CLOSE_WITHIN)
        with contextlib.suppress(OSError):
            self._sock.close()

    def _goodbye(self, deadline: float) -> None:
        """FCUnpublish and deleteStream, then a graceful end of the connection by ``deadline``."""
        sock = self._sock
        sock.settimeout(0.3)
        goodbye = self._command("FCUnpublish", None, self._name) + self._command(
            "deleteStream", None, self._stream_id
        )
        self._outbox.write(goodbye)  # after the end of a message that did not wait, if any
        if isinstance(sock, ssl.SSLSocket):
            sock.settimeout(max(0.05, (deadline - time.monotonic()) / 2))
            with contextlib.suppress(OSError, ValueError):
                sock = sock.unwrap()  # close_notify, and the centre's in return
        # Half-close and read until the centre closes too: closing with unread data would reset
        # the connection, and a reset can discard the end of the stream over there.
        try:
            sock.shutdown(socket.SHUT_WR)
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                if not sock.recv(65536):
                    break
        finally:
            if sock is not self._sock:
                sock.close()

    # -- handshake and commands ----------------------------------------------------------------

    def _handshake(self, deadline: float) -> None:
        c1 = bytes(8) + os.urandom(_HANDSHAKE - 8)
        self._write(b"\x03" + c1)
        version = self._read_exactly(1, deadline, "the RTMP handshake")[0]
        if version != 3:
            raise PushError(f"not an RTMP server (handshake version {version})")
        reply = self._read_exactly(2 * _HANDSHAKE, deadline, "the RTMP handshake")
        self._write(reply[:_HANDSHAKE])

    def _command(self, name: str, *args: AmfValue, stream: int = 0) -> bytes:
        self._transaction += 1
        payload = amf_encode(name, self._transaction, *args)
        csid = _CS_STREAM if stream else _CS_COMMAND
        return self._message(csid, _COMMAND, 0, [payload], stream)

    def _wait_result(
        self, transaction: int, what: str, deadline: float
    ) -> tuple[str, list[AmfValue]]:
        while transaction not in self._results:
            self._receive(deadline, what)
        return self._results.pop(transaction)

    def _wait_publish(self, transaction: int, deadline: float) -> None:
        while True:
            if transaction in self._results:
                name, args = self._results.pop(transaction)
                if name == "_error":
                    raise self._refusal("the centre refused the stream", args)
            for status in self._statuses:
                code = str(status.get("code", ""))
                if code == "NetStream.Publish.Start":
                    self._statuses.clear()
                    return
                if status.get("level") == "error" or code.endswith(_REFUSED):
                    raise self._refusal("the centre refused the stream", [None, None, status])
            self._statuses.clear()
            self._receive(deadline, "publish")

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

    def _check_statuses(self) -> None:
        statuses, self._statuses = self._statuses, []
        self._results.clear()
        for status in statuses:
            if status.get("level") == "error":
                self._broken = True
                raise self._refusal("the centre stopped the stream", [status])

    # -- media ---------------------------------------------------------------------------------

    def _send_headers(self) -> None:
        meta = EcmaArray(duration=0.0)
        parts: list[bytes] = []
        video, audio = self._video, self._audio
        if video is not None:
            meta.update(width=float(video.width), height=float(video.height))
            rate = _frame_rate(video)
            if rate:
                meta["framerate"] = rate
            meta["videocodecid"] = 7.0
        if audio is not None:
            meta.update(
                audiocodecid=10.0,
                audiosamplerate=float(audio.sample_rate),
                audiosamplesize=16.0,
                stereo=audio.channels >= 2,
            )
        meta["encoder"] = "camera-gateway"
        sid = self._stream_id
        data = amf_encode("@setDataFrame", "onMetaData", meta)
        parts.append(self._message(_CS_DATA, _DATA, 0, [data], sid))
        if video is not None and video.extradata:
            self._avc_config = avc_decoder_config(video.extradata)
            if self._avc_config is not None:
                header = avc_sequence_header(self._avc_config)
                parts.append(self._message(_CS_VIDEO, _VIDEO, 0, [header], sid))
        if audio is not None and audio.extradata:
            header = aac_sequence_header(audio.extradata)
            parts.append(self._message(_CS_AUDIO, _AUDIO, 0, [header], sid))
        self._write(b"".join(parts))

    def _send_video(self, packet: Packet, track: Track, wait: bool) -> None:
        data, keyframe = packet.data, packet.keyframe
        held = self._held
        if held is not None:
            # Parameter sets or SEI that came apart from their picture go in front of it.
            self._held = None
            data = held[0] + data
            keyframe = keyframe or (packet.continuation and held[1])
        composition = 0
        if packet.pts != packet.dts:
            num, den = self._scales[track.index]
            composition = max(0, ((packet.pts - packet.dts) * num + den // 2) // den)
        frame = avc_frame(data, keyframe, composition)
        if not frame.picture:
            if len(data) <= _MAX_HELD:
                self._held = (data, keyframe)
            return
        header = b""
        if frame.keyframe:
            config = avc_config_record(*parameter_sets(data)) or self._avc_config
            if config is None:
                return  # no parameter sets yet: nothing could decode this
            if config != self._avc_config:
                self._avc_config = config
                header = avc_sequence_header(config)
            self._video_started = True
        elif not self._video_started:
            return  # a picture that needs an earlier keyframe
        ms = self._ms(track.index, packet.dts)
        sid = self._stream_id
        message = self._message(_CS_VIDEO, _VIDEO, ms, frame.parts, sid)
        if header:
            message = self._message(_CS_VIDEO, _VIDEO, ms, [header], sid) + message
        self._write(message, wait=wait)

    def _ms(self, track: int, ticks: int) -> int:
        """Milliseconds since the first packet of the session; never decreasing per track."""
        num, den = self._scales[track]
        ms = (ticks * num + den // 2) // den
        if self._origin is None:
            self._origin = ms
        ms -= self._origin
        ms = max(ms, self._last_ms.get(track, 0))
        self._last_ms[track] = ms
        return ms

    # -- chunks --------------------------------------------------------------------------------

    def _message(
        self, csid: int, kind: int, timestamp: int, parts: Sequence[bytes | memoryview], stream: int
    ) -> bytes:
        """One message as chunks: type 0 (or type 1 with a delta when the chunk stream already
        carries this message stream and time goes forward), then type 3 continuations."""
        length = sum(len(p) for p in parts)
        timestamp &= 0xFFFFFFFF
        previous = self._out.get(csid)
        self._out[csid] = (timestamp, stream)
        if previous is None or previous[1] != stream or timestamp < previous[0]:
            value = timestamp
            tail = length.to_bytes(3, "big") + bytes((kind,)) + stream.to_bytes(4, "little")
            first = csid
        else:
            value = timestamp - previous[0]
            tail = length.to_bytes(3, "big") + bytes((kind,))
            first = 0x40 | csid
        if value >= 0xFFFFFF:
            extended = _U32.pack(value)
            header = bytes((first, 0xFF, 0xFF, 0xFF)) + tail + extended
        else:
            extended = b""
            header = bytes((first,)) + value.to_bytes(3, "big") + tail
        return _chunked(header, bytes((0xC0 | csid,)) + extended, parts, CHUNK_SIZE)

    def _write(self, data: bytes, *, wait: bool = True) -> None:
        """Send ``data`` after anything left from a write that did not wait; with ``wait``
        False, leave what the socket does not take at once for the next write."""
        try:
            self._outbox.write(data, wait=wait)
        except TimeoutError:
            self._broken = True
            raise PushError(f"uplink stalled (nothing sent for {self._timeout:g} s)") from None
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            self._broken = True
            raise PushError("connection to the centre lost") from None
        except ssl.SSLError as exc:
            self._broken = True
            raise PushError(f"TLS error: {exc.reason or exc.strerror or 'unknown'}") from None
        except OSError as exc:
            self._broken = True
            raise PushError(f"uplink error: {exc.strerror or type(exc).__name__}") from None

    # -- receiving -----------------------------------------------------------------------------

    def _receive(self, deadline: float, what: str) -> None:
        """Wait for data from the server and handle it."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise PushError(f"no answer to {what} within {self._timeout:g} s")
        self._sock.settimeout(left)
        try:
            data = self._sock.recv(65536)
        except TimeoutError:
            raise PushError(f"no answer to {what} within {self._timeout:g} s") from None
        except (ssl.SSLError, OSError) as exc:
            self._broken = True
            raise PushError(
                f"connection to the centre lost during {what}: {_reason(exc)}"
            ) from None
        finally:
            self._sock.settimeout(self._timeout)
        if not data:
            self._broken = True
            if what == "connect":
                raise PushError(
                    f"the centre closed the connection after connect "
                    f"(application {self._app!r} refused?)"
                )
            raise PushError(f"the centre closed the connection during {what}")
        self._received_data(data)

    def _read_exactly(self, size: int, deadline: float, what: str) -> bytes:
        data = bytearray()
        while len(data) < size:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PushError(f"no answer to {what} within {self._timeout:g} s")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(size - len(data))
            except TimeoutError:
                raise PushError(f"no answer to {what} within {self._timeout:g} s") from None
            except (ssl.SSLError, OSError) as exc:
                self._broken = True
                raise PushError(f"connection lost during {what}: {_reason(exc)}") from None
            finally:
                self._sock.settimeout(self._timeout)
            if not chunk:
                self._broken = True
                raise PushError(f"the centre closed the connection during {what}")
            data += chunk
        self._received += size
        return bytes(data)

    def _read_available(self) -> tuple[list[bytes], bool]:
        """Whatever the server sent, without waiting; and whether it closed the connection."""
        chunks: list[bytes] = []
        self._sock.settimeout(0.0)
        try:
            while True:
                try:
                    data = self._sock.recv(65536)
                except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                    return chunks, False
                except ssl.SSLWantWriteError:
                    return chunks, False
                except (ssl.SSLError, OSError):
                    self._broken = True
                    for data in chunks:
                        self._received_data(data)
                    raise PushError("connection to the centre lost") from None
                if not data:
                    return chunks, True
                chunks.append(data)
        finally:
            self._sock.settimeout(self._timeout)

    def _received_data(self, data: bytes) -> None:
        self._received += len(data)
        replies: list[bytes] = []
        for message in self._reader.feed(data):
            reply = self._handle(message)
            if reply:
                replies.append(reply)
        if self._ack_window and self._received - self._acked_at >= self._ack_window:
            self._acked_at = self._received
            ack = _U32.pack(self._received & 0xFFFFFFFF)
            replies.append(self._message(_CS_CONTROL, _ACK, 0, [ack], 0))
        if replies:
            self._write(b"".join(replies))

    def _handle(self, message: _Message) -> bytes:
        """Act on one message from the server; return what to answer (often nothing)."""
        kind, payload = message.kind, message.payload
        if kind == _WINDOW_ACK_SIZE and len(payload) >= 4:
            self._ack_window = _U32.unpack_from(payload)[0]
        elif kind == _USER_CONTROL and len(payload) >= 6:
            if int.from_bytes(payload[:2], "big") == _PING_REQUEST:
                pong = [_PING_RESPONSE.to_bytes(2, "big") + payload[2:6]]
                return self._message(_CS_CONTROL, _USER_CONTROL, 0, pong, 0)
        elif kind in (_COMMAND, _AMF3_COMMAND):
            values = amf_decode(payload[1:] if kind == _AMF3_COMMAND else payload)
            if len(values) < 2 or not isinstance(values[0], str):
                return b""
            name, transaction = values[0], values[1]
            if name in ("_result", "_error") and isinstance(transaction, float):
                self._results[int(transaction)] = (name, values[2:])
            elif name == "onStatus":
                status = next((v for v in values[2:] if isinstance(v, dict)), None)
                if status is not None:
                    self._statuses.append(status)
            elif name == "close":
                self._statuses.append({"level": "error", "code": "NetConnection.Connect.Closed"})
        return b""


def _chunked(
    header: bytes, continuation: bytes, parts: Sequence[bytes | memoryview], chunk_size: int
) -> bytes:
    """``header``, the parts cut into chunks of ``chunk_size`` with ``continuation`` between."""
    out: list[bytes | memoryview] = [header]
    room = chunk_size
    for part in parts:
        size = len(part)
        if size <= room:
            out.append(part)
            room -= size
            continue
        view = memoryview(part)
        pos = 0
        while size - pos > room:
            if room:
                out.append(view[pos : pos + room])
                pos += room
            out.append(continuation)
            room = chunk_size
        out.append(view[pos:])
        room -= size - pos
    return b"".join(out)


def _frame_rate(track: Track) -> float | None:
    """The frame rate the source declared, if any."""
    context = getattr(track.template, "codec_context", None)
    rate = getattr(context, "framerate", None)
    try:
        value = float(rate) if rate else 0.0
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return value if 0 < value <= 300 else None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or exc.strerror or "TLS error"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__
