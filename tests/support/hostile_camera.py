"""A hostile RTSP camera for the tests: a small RTSP server, Python standard library only, that
behaves the way a broken or malicious camera could, so the daemon's containment is tested
against real bytes.

Usage: python hostile_camera.py --port PORT --mode MODE [--clip FILE.h264] [--rate BYTES_PER_S]
       [--path /stream] [--fps FPS] [--packet-size BYTES] [--good-first SECONDS]
       [--address 127.0.0.1]

It runs with the system ``/usr/bin/python3`` and with the project's virtual environment alike.
It prints ``READY <port>`` on stdout once it listens, serves any number of clients (one thread
each, plus one sending thread once a client plays), logs what each client does on stderr, and
exits with status 0 within a fraction of a second of SIGTERM or SIGINT.

The clip is an Annex-B H.264 elementary stream, such as ``ffmpeg ... -f h264 clip.h264`` writes.
Its SPS and PPS go in the SDP and its frame rate is read from the SPS's VUI timing (25 fps when
absent; ``--fps`` overrides). Modes that send pictures (``good``, ``flood``, ``no-keyframe``)
need a clip. The others work without one: the SDP then carries the parameter sets of a 640×360
baseline stream.

The handshake is a camera's, in every mode unless the mode says otherwise:

- OPTIONS: ``Public`` lists the methods below.
- DESCRIBE: ``application/sdp`` with one H.264 video track: ``m=video 0 RTP/AVP 96``,
  ``a=rtpmap:96 H264/90000``, ``a=fmtp:96 packetization-mode=1;profile-level-id=...;
  sprop-parameter-sets=SPS,PPS`` and ``a=control:trackID=0``. ``Content-Base`` is the request
  URL with a final ``/``. Another path than ``--path`` gets ``404 Not Found``.
- SETUP: RTP over the RTSP connection only (``RTP/AVP/TCP;unicast;interleaved=0-1``, the
  channels the client asked for); a UDP request gets ``461 Unsupported Transport``. The reply
  carries ``Session: <id>;timeout=60``.
- PLAY: ``Range: npt=0.000-`` and ``RTP-Info`` (seq, rtptime); the mode's sending starts.
- GET_PARAMETER and SET_PARAMETER (keep-alives), PAUSE (ignored, the stream goes on): 200.
- TEARDOWN: 200, then the connection is closed. Other methods: ``501 Not Implemented``.

Every reply echoes the request's CSeq. Interleaved frames from the client (RTCP receiver
reports on channel 1) are read and ignored. RTP packets carry payload type 96, a random SSRC,
random first sequence number and timestamp, and 90 kHz timestamps. A NAL unit of at most
``--packet-size`` bytes (default 1400) travels as a single-NAL packet, a larger one as FU-A
fragments of that payload size; the marker bit is set on the last packet of each access unit.

``--rate`` is in bytes per second on the wire, interleaved and RTP headers included; 0 means
as fast as the socket takes. ``--good-first SECONDS`` (with a clip, for the modes that misbehave
after PLAY) plays the clip as ``good`` does for that long first, so the client is well into
reading packets when the misbehaviour starts; sequence numbers and timestamps run on. Modes, and
what they send:

``good``
    The clip in real time at its frame rate, looping, timestamps continuing across loops. The
    reference that proves the server itself right: FFmpeg decodes it without a complaint.
``fua-endless``
    After PLAY, one FU-A start fragment of an IDR NAL unit, then middle fragments forever:
    never the end bit, never the marker bit, always the same timestamp, sequence numbers
    consecutive. The payload repeats the clip's first IDR (made-up bytes without a clip) and
    never holds a start code. Default 4 MB/s.
``unknown-channel``
    After PLAY, interleaved ``$`` frames on channel 9 (a channel that was never set up; 10 if
    the client set up 8-9 or 9-10), each holding a well-formed RTP packet, forever.
    Default 4 MB/s.
``endless-line``
    After PLAY, bytes that are neither ``$`` frames nor a line: letters and digits, never
    ``$``, CR or LF, forever. Requests are read and left unanswered.
    Default 4 MB/s.
``huge-describe``
    The DESCRIBE reply announces ``Content-Length: 1500000000`` and then sends that many body
    bytes: a valid SDP followed by ``a=x-padding:xxx...`` lines, so a client that reads it all
    has a usable SDP; the handshake then goes on, and nothing is sent after PLAY. Default: as
    fast as the socket takes (``--rate 0``).
``endless-header``
    The DESCRIBE reply is a status line ``RTSP/1.0 200 OK`` and then a first header line,
    ``X-Padding: xxx...``, that never ends: no CR or LF ever again. Default 4 MB/s.
``flood``
    A valid, decodable stream at ``--rate`` (default 3 MB/s): every access unit of the clip is
    followed by one H.264 filler-data NAL unit (type 12: ``0x0c``, ``0xff``..., ``0x80``) sized
    so that each frame interval carries ``rate / fps`` bytes; real-time frame pacing.
``no-keyframe``
    The clip's first GOP (parameter sets, IDR and the pictures up to the next IDR), then only
    the clip's P pictures, in a loop, forever: no IDR, SPS or PPS ever again. Timestamps keep
    increasing at the frame rate; frame_num does not (the pictures do not decode right after
    the first GOP, but no keyframe flag can appear).
``silent``
    After PLAY, nothing at all: the TCP connection stays open, requests (keep-alives,
    TEARDOWN) are read and left unanswered.
``garbage-rtp``
    After PLAY, well-formed ``$`` frames on the RTP channel, each holding random bytes
    (12 to ``--packet-size`` + 12 of them) instead of an RTP packet. Default 1 MB/s.
``garbage-h264``
    After PLAY, well-formed RTP packets (version 2, type 96, consecutive sequence numbers,
    real-time timestamps, a marker every 25th packet) whose payloads are random bytes: random
    NAL types, FU-A and STAP-A headers and lengths. Default 1 MB/s.
``trickle``
    After PLAY, the interleaved RTP packets of the clip's first access unit (a made-up IDR
    without a clip), over and over, one byte at a time at ``--rate`` bytes per second
    (default 1): data keeps arriving, so no read times out, but a packet of 1400 bytes takes
    more than 20 minutes.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import os
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType

MODES = (
    "good",
    "fua-endless",
    "unknown-channel",
    "endless-line",
    "huge-describe",
    "endless-header",
    "flood",
    "no-keyframe",
    "silent",
    "garbage-rtp",
    "garbage-h264",
    "trickle",
)
CLIP_MODES = frozenset({"good", "flood", "no-keyframe"})
DESCRIBE_MODES = frozenset({"huge-describe", "endless-header"})
MUTE_MODES = frozenset({"endless-line", "silent"})
"""Modes that answer no request once they misbehave (a reply would break their byte stream)."""
DEFAULT_RATES = {
    "fua-endless": 4_000_000.0,
    "unknown-channel": 4_000_000.0,
    "endless-line": 4_000_000.0,
    "huge-describe": 0.0,
    "endless-header": 4_000_000.0,
    "flood": 3_000_000.0,
    "garbage-rtp": 1_000_000.0,
    "garbage-h264": 1_000_000.0,
    "trickle": 1.0,
}
HUGE_CONTENT_LENGTH = 1_500_000_000
PAYLOAD_TYPE = 96
RTP_CLOCK = 90_000
CHUNK = 64 * 1024
"""Bytes handed to the socket at once by the rate-paced modes."""
MAX_REQUEST = 64 * 1024
"""A request head longer than this closes the connection: clients are not under test here."""

# Parameter sets of a 640×360 baseline stream at 25 fps (libx264), for the SDP without a clip.
BUILTIN_SPS = base64.b64decode("Z0LAHtkAoC/5cBEAAAMAAQAAAwAyDxYuSA==")
BUILTIN_PPS = base64.b64decode("aMuDyyA=")

NAL_SLICE, NAL_IDR, NAL_SEI, NAL_SPS, NAL_PPS, NAL_AUD, NAL_FILLER = 1, 5, 6, 7, 8, 9, 12
NAL_FU_A, NAL_STAP_A = 28, 24
# NAL unit types that open a new access unit when they follow a picture (H.264 7.4.1.2.3).
_AU_OPENERS = frozenset({NAL_SEI, NAL_SPS, NAL_PPS, NAL_AUD, 14, 15, 16, 17, 18})
_LINE_SAFE = b"abcdefghijklmnopqrstuvwxyz0123456789"


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} hostile-camera: {message}", file=sys.stderr, flush=True)


# --- the clip -------------------------------------------------------------------------------


class BitReader:
    """Exp-Golomb and fixed-width reads over an RBSP (emulation prevention removed)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def bit(self) -> int:
        byte = self.data[self.pos >> 3]  # IndexError past the end: the caller gives up
        value = (byte >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("exp-Golomb code too long")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def rbsp(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def split_nal_units(stream: bytes) -> list[bytes]:
    """The NAL units of an Annex-B byte stream, without start codes or trailing zero bytes."""
    starts = [m.end() for m in re.finditer(b"\x00\x00\x01", stream)]
    units = []
    for begin, end in zip(starts, [*starts[1:], len(stream) + 3], strict=True):
        nal = stream[begin : end - 3].rstrip(b"\x00")
        if nal:
            units.append(nal)
    return units


def slice_type(nal: bytes) -> int | None:
    """The slice_type of a slice NAL unit modulo 5 (0 P, 1 B, 2 I), or None if unreadable."""
    try:
        reader = BitReader(rbsp(nal[1:16]))
        reader.ue()  # first_mb_in_slice
        return reader.ue() % 5
    except (IndexError, ValueError):
        return None


def sps_frame_rate(sps: bytes) -> float | None:
    """Frames per second from the SPS's VUI timing information, or None when it has none."""
    try:
        reader = BitReader(rbsp(sps[1:]))
        profile = reader.bits(8)
        reader.bits(16)  # constraint flags, level
        reader.ue()  # seq_parameter_set_id
        if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
            chroma_format = reader.ue()
            if chroma_format == 3:
                reader.bit()
            reader.ue()
            reader.ue()
            reader.bit()
            if reader.bit():  # seq_scaling_matrix_present_flag
                for i in range(8 if chroma_format != 3 else 12):
                    if reader.bit():
                        last, following = 8, 8
                        for _ in range(16 if i < 6 else 64):
                            if following:
                                following = (last + reader.se() + 256) % 256
                            last = following or last
        reader.ue()  # log2_max_frame_num_minus4
        poc_type = reader.ue()
        if poc_type == 0:
            reader.ue()
        elif poc_type == 1:
            reader.bit()
            reader.se()
            reader.se()
            for _ in range(reader.ue()):
                reader.se()
        reader.ue()  # max_num_ref_frames
        reader.bit()
        reader.ue()  # pic_width_in_mbs_minus1
        reader.ue()
        if not reader.bit():  # frame_mbs_only_flag
            reader.bit()
        reader.bit()
        if reader.bit():  # frame_cropping_flag
            for _ in range(4):
                reader.ue()
        if not reader.bit():  # vui_parameters_present_flag
            return None
        if reader.bit() and reader.bits(8) == 255:  # aspect_ratio_info
            reader.bits(32)
        if reader.bit():  # overscan_info_present_flag
            reader.bit()
        if reader.bit():  # video_signal_type_present_flag
            reader.bits(4)
            if reader.bit():
                reader.bits(24)
        if reader.bit():  # chroma_loc_info_present_flag
            reader.ue()
            reader.ue()
        if not reader.bit():  # timing_info_present_flag
            return None
        units, scale = reader.bits(32), reader.bits(32)
        return scale / (2 * units) if units and scale else None
    except (IndexError, ValueError):
        return None


@dataclass
class AccessUnit:
    nals: list[bytes]

    @property
    def idr(self) -> bool:
        return any(n[0] & 0x1F == NAL_IDR for n in self.nals)

    @property
    def p_picture(self) -> bool:
        """Only non-IDR slices, all of them P slices: a picture no decoder takes as a key."""
        slices = [n for n in self.nals if n[0] & 0x1F in (NAL_SLICE, NAL_IDR)]
        return bool(slices) and all(n[0] & 0x1F == NAL_SLICE and slice_type(n) == 0 for n in slices)

    @property
    def pictures_only(self) -> list[bytes]:
        return [n for n in self.nals if n[0] & 0x1F in (NAL_SLICE, NAL_IDR)]


@dataclass
class Clip:
    sps: bytes
    pps: bytes
    units: list[AccessUnit] = field(default_factory=list)
    fps: float = 25.0

    @classmethod
    def builtin(cls) -> Clip:
        return cls(BUILTIN_SPS, BUILTIN_PPS)

    @classmethod
    def load(cls, path: str) -> Clip:
        with open(path, "rb") as f:
            nals = split_nal_units(f.read())
        units: list[AccessUnit] = []
        current: list[bytes] = []
        has_picture = False
        for nal in nals:
            kind = nal[0] & 0x1F
            first_slice = kind in (NAL_SLICE, NAL_IDR) and len(nal) > 1 and nal[1] & 0x80
            if has_picture and (kind in _AU_OPENERS or first_slice):
                units.append(AccessUnit(current))
                current, has_picture = [], False
            current.append(nal)
            has_picture = has_picture or kind in (NAL_SLICE, NAL_IDR)
        if has_picture:
            units.append(AccessUnit(current))
        sps = next((n for n in nals if n[0] & 0x1F == NAL_SPS), None)
        pps = next((n for n in nals if n[0] & 0x1F == NAL_PPS), None)
        if sps is None or pps is None or not units or not units[0].idr:
            raise SystemExit(f"{path}: not an H.264 stream opening with SPS, PPS and an IDR")
        return cls(sps, pps, units, sps_frame_rate(sps) or 25.0)

    def sdp(self, mode: str, session: str) -> str:
        sprop = ",".join(base64.b64encode(n).decode() for n in (self.sps, self.pps))
        lines = [
            "v=0",
            f"o=- {session} 1 IN IP4 127.0.0.1",
            f"s=hostile camera ({mode})",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "a=control:*",
            "a=range:npt=0-",
            f"m=video 0 RTP/AVP {PAYLOAD_TYPE}",
            f"a=rtpmap:{PAYLOAD_TYPE} H264/{RTP_CLOCK}",
            f"a=fmtp:{PAYLOAD_TYPE} packetization-mode=1;profile-level-id={self.sps[1:4].hex()};"
            f"sprop-parameter-sets={sprop}",
            "a=control:trackID=0",
        ]
        return "\r\n".join(lines) + "\r\n"


# --- RTP ------------------------------------------------------------------------------------


class RtpPacketiser:
    """RTP packets (RFC 3550) of H.264 (RFC 6184), framed for the RTSP connection ($)."""

    def __init__(self, channel: int, packet_size: int) -> None:
        self.channel = channel
        self.packet_size = packet_size
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.first_seq = self.seq
        self.base = random.getrandbits(32)

    def rtptime(self, seconds: float) -> int:
        return (self.base + round(seconds * RTP_CLOCK)) & 0xFFFFFFFF

    def packet(self, payload: bytes, timestamp: int, marker: bool) -> bytes:
        header = struct.pack(
            "!BBHII",
            0x80,
            (0x80 if marker else 0) | PAYLOAD_TYPE,
            self.seq,
            timestamp,
            self.ssrc,
        )
        self.seq = (self.seq + 1) & 0xFFFF
        return interleaved(self.channel, header + payload)

    def nal(self, nal: bytes, timestamp: int, last: bool) -> list[bytes]:
        """Single-NAL packet, or FU-A fragments when the NAL unit is larger than a packet."""
        if len(nal) <= self.packet_size:
            return [self.packet(nal, timestamp, last)]
        indicator = (nal[0] & 0xE0) | NAL_FU_A
        kind = nal[0] & 0x1F
        step = self.packet_size - 2
        body = memoryview(nal)[1:]
        packets = []
        for offset in range(0, len(body), step):
            start = 0x80 if offset == 0 else 0
            end = 0x40 if offset + step >= len(body) else 0
            fu = bytes((indicator, start | end | kind))
            packets.append(
                self.packet(fu + body[offset : offset + step], timestamp, last and end != 0)
            )
        return packets

    def access_unit(self, nals: list[bytes], timestamp: int) -> bytes:
        out = []
        for i, nal in enumerate(nals):
            out += self.nal(nal, timestamp, i == len(nals) - 1)
        return b"".join(out)

    @staticmethod
    def wire_size(nal_size: int, packet_size: int) -> int:
        """Bytes on the connection for one NAL unit of ``nal_size`` bytes."""
        if nal_size <= packet_size:
            return 4 + 12 + nal_size
        fragments = -(-(nal_size - 1) // (packet_size - 2))
        return fragments * (4 + 12 + 2) + nal_size - 1


def interleaved(channel: int, data: bytes) -> bytes:
    return struct.pack("!cBH", b"$", channel, len(data)) + data


def filler_nal(wire_bytes: int, packet_size: int) -> bytes | None:
    """A filler-data NAL unit taking about ``wire_bytes`` on the connection (None if too few)."""
    if wire_bytes < 4 + 12 + 2:
        return None
    size = wire_bytes - 16
    if size > packet_size:
        fragments = -(-wire_bytes // (packet_size + 18))
        size = wire_bytes - 18 * fragments + 1
        while RtpPacketiser.wire_size(size, packet_size) > wire_bytes and size > 2:
            size -= 1
    return bytes((NAL_FILLER,)) + b"\xff" * (size - 2) + b"\x80"


# --- pacing ---------------------------------------------------------------------------------


class Pacer:
    """Holds a byte rate: ``take(n)`` waits until ``n`` more bytes may go (rate 0: never)."""

    def __init__(self, rate: float, stop: threading.Event) -> None:
        self.rate = rate
        self.stop = stop
        self.start = 0.0
        self.sent = 0

    def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        if not self.sent:
            self.start = now
        due = self.start + self.sent / self.rate
        if due > now:
            self.stop.wait(due - now)
        elif now - due > 1.0:
            # The client reads slower than the rate: go on from here instead of bursting.
            self.start = now - self.sent / self.rate
        self.sent += n


# --- one client -----------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes

    @property
    def cseq(self) -> str:
        return self.headers.get("cseq", "0")


def reply_head(request: Request, status: str = "200 OK", headers: tuple[str, ...] = ()) -> bytes:
    lines = [f"RTSP/1.0 {status}", f"CSeq: {request.cseq}", "Server: hostile-camera", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class ClosedError(Exception):
    """The client went away, or the server is stopping."""


class Client:
    def __init__(self, sock: socket.socket, peer: str, server: Server) -> None:
        self.sock = sock
        self.peer = peer
        self.options = server.options
        self.clip = server.clip
        self.mode = server.options.mode
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.buffer = bytearray()
        self.session = f"{random.getrandbits(48):012X}"
        self.base_url = ""
        self.channels = (0, 1)
        self.playing = False
        self.mute = False  # no more replies (modes whose byte stream must stay unbroken)
        self.sent = 0
        self.media = 0.0  # seconds of pictures sent: where the next RTP timestamp stands
        self.rtp = RtpPacketiser(0, self.options.packet_size)

    # Bytes in and out.

    def send(self, data: bytes) -> None:
        if self.stop.is_set():
            raise ClosedError
        with self.lock:
            try:
                self.sock.sendall(data)
            except OSError as exc:
                raise ClosedError from exc
            self.sent += len(data)

    def paced(self, chunks: Iterator[bytes], rate: float) -> None:
        """Send ``chunks`` (re-batched to about CHUNK bytes) at ``rate`` until stopped."""
        pacer = Pacer(rate, self.stop)
        batch: list[bytes] = []
        size = 0
        for chunk in chunks:
            batch.append(chunk)
            size += len(chunk)
            if size >= CHUNK or (rate and size >= rate / 50):
                data = b"".join(batch)
                pacer.take(len(data))
                self.send(data)
                batch, size = [], 0

    def fill(self, n: int) -> None:
        while len(self.buffer) < n:
            try:
                data = self.sock.recv(65536)
            except OSError as exc:
                raise ClosedError from exc
            if not data:
                raise ClosedError
            self.buffer += data

    def read_request(self) -> Request:
        while True:
            self.fill(1)
            if self.buffer[0] == ord("$"):  # interleaved data from the client (RTCP): ignored
                self.fill(4)
                length = struct.unpack_from("!H", self.buffer, 2)[0]
                self.fill(4 + length)
                del self.buffer[: 4 + length]
                continue
            end = self.buffer.find(b"\r\n\r\n")
            while end < 0:
                if len(self.buffer) > MAX_REQUEST:
                    raise ClosedError
                self.fill(len(self.buffer) + 1)
                end = self.buffer.find(b"\r\n\r\n")
            head = bytes(self.buffer[:end]).decode("latin-1")
            del self.buffer[: end + 4]
            first, *lines = head.split("\r\n")
            parts = first.split()
            headers = {}
            for line in lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            self.fill(length)
            body = bytes(self.buffer[:length])
            del self.buffer[:length]
            method, url = [*parts, "", ""][:2]
            return Request(method.upper(), url, headers, body)

    def reply(
        self, request: Request, status: str = "200 OK", headers: tuple[str, ...] = ()
    ) -> None:
        self.send(reply_head(request, status, headers))

    # The conversation.

    def run(self) -> None:
        log(f"{self.peer}: connected")
        try:
            while not self.stop.is_set():
                request = self.read_request()
                if self.mute:
                    continue
                if not self.handle(request):
                    break
        except ClosedError:
            pass
        except Exception as exc:  # a bug here must not take the other clients down
            log(f"{self.peer}: {type(exc).__name__}: {exc}")
        finally:
            self.close()
            log(f"{self.peer}: gone after {self.sent} bytes sent")

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def path_ok(self, url: str) -> bool:
        path = re.sub(r"^[a-z]+://[^/]*", "", url, flags=re.IGNORECASE).split("?")[0]
        want = self.options.path.rstrip("/")
        return path.rstrip("/") == want or path.startswith(want + "/")

    def handle(self, request: Request) -> bool:
        method = request.method
        if method == "OPTIONS":
            public = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
            self.reply(request, headers=(f"Public: {public}",))
        elif method in ("GET_PARAMETER", "SET_PARAMETER", "PAUSE"):
            self.reply(request, headers=(f"Session: {self.session};timeout=60",))
        elif method == "TEARDOWN":
            self.reply(request, headers=(f"Session: {self.session}",))
            return False
        elif not self.path_ok(request.url):
            self.reply(request, "404 Not Found")
        elif method == "DESCRIBE":
            self.describe(request)
        elif method == "SETUP":
            self.setup(request)
        elif method == "PLAY":
            self.play(request)
        else:
            self.reply(request, "501 Not Implemented")
        return True

    def describe(self, request: Request) -> None:
        self.base_url = request.url.rstrip("/") + "/"
        sdp = self.clip.sdp(self.mode, self.session).encode()
        headers = (f"Content-Base: {self.base_url}", "Content-Type: application/sdp")
        if self.mode == "endless-header":
            log(f"{self.peer}: DESCRIBE answered with a header line that never ends")
            self.send(b"RTSP/1.0 200 OK\r\nX-Padding: ")
            self.paced(itertools.repeat(b"x" * 4096), self.options.rate)
        elif self.mode == "huge-describe":
            log(f"{self.peer}: DESCRIBE answered with Content-Length: {HUGE_CONTENT_LENGTH}")
            length = f"Content-Length: {HUGE_CONTENT_LENGTH}"
            self.send(reply_head(request, headers=(*headers, length)))
            self.paced(huge_body(sdp), self.options.rate)
            log(f"{self.peer}: the whole huge DESCRIBE body is sent")
        else:
            length = f"Content-Length: {len(sdp)}"
            self.send(reply_head(request, headers=(*headers, length)) + sdp)

    def setup(self, request: Request) -> None:
        transport = request.headers.get("transport", "")
        found = re.search(r"interleaved=(\d+)(?:-(\d+))?", transport)
        if "TCP" not in transport.upper() or not found:
            self.reply(request, "461 Unsupported Transport")
            return
        rtp = int(found.group(1))
        rtcp = int(found.group(2)) if found.group(2) else rtp + 1
        self.channels = (rtp, rtcp)
        self.rtp = RtpPacketiser(rtp, self.options.packet_size)
        self.reply(
            request,
            headers=(
                f"Transport: RTP/AVP/TCP;unicast;interleaved={rtp}-{rtcp};ssrc={self.rtp.ssrc:08X}",
                f"Session: {self.session};timeout=60",
            ),
        )

    def play(self, request: Request) -> None:
        track = (self.base_url or request.url.rstrip("/") + "/") + "trackID=0"
        self.reply(
            request,
            headers=(
                f"Session: {self.session};timeout=60",
                "Range: npt=0.000-",
                f"RTP-Info: url={track};seq={self.rtp.seq};rtptime={self.rtp.rtptime(0)}",
            ),
        )
        if self.playing:
            return
        self.playing = True
        lead = self.options.good_first
        if not lead:
            self.mute = self.mode in MUTE_MODES
        log(f"{self.peer}: PLAY, {self.mode}" + (f" after {lead:g} s of the clip" if lead else ""))
        sender = SENDERS.get(self.mode)
        if sender is not None:
            thread = threading.Thread(
                target=self.sending, args=(sender,), name=f"send-{self.peer}", daemon=True
            )
            thread.start()

    def sending(self, sender: Callable[[Client], None]) -> None:
        try:
            if self.options.good_first:
                units = itertools.cycle([u.nals for u in self.clip.units])
                realtime(self, units, until=self.options.good_first)
                log(f"{self.peer}: {self.mode} starts now")
                self.mute = self.mode in MUTE_MODES
            sender(self)
        except ClosedError:
            pass
        except Exception as exc:
            log(f"{self.peer}: sending failed: {type(exc).__name__}: {exc}")
        finally:
            self.close()


# --- what each mode sends after PLAY --------------------------------------------------------


def realtime(
    client: Client, units: Iterator[list[bytes]], pad_to: float = 0.0, until: float = 0.0
) -> None:
    """One access unit per frame interval; with ``pad_to``, each padded with filler data so
    that the wire carries ``pad_to`` bytes per second; with ``until``, only that many seconds."""
    fps = client.options.fps or client.clip.fps
    started = time.monotonic()
    for index, picture in enumerate(units):
        if until and index >= until * fps:
            return
        delay = started + index / fps - time.monotonic()
        if delay > 0:
            client.stop.wait(delay)
        elif delay < -1.0:  # the client reads slower than real time: no burst to catch up
            started -= delay
        if client.stop.is_set():
            return
        size = client.options.packet_size
        nals = picture
        if pad_to:
            wire = sum(RtpPacketiser.wire_size(len(n), size) for n in nals)
            target = round(pad_to * (index + 1) / fps) - round(pad_to * index / fps)
            filler = filler_nal(target - wire, size)
            nals = [*picture, filler] if filler else picture
        client.send(client.rtp.access_unit(nals, client.rtp.rtptime(client.media)))
        client.media += 1 / fps


def send_good(client: Client) -> None:
    realtime(client, itertools.cycle([u.nals for u in client.clip.units]))


def send_flood(client: Client) -> None:
    realtime(client, itertools.cycle([u.nals for u in client.clip.units]), client.options.rate)


def send_no_keyframe(client: Client) -> None:
    units = client.clip.units
    second_idr = next((i for i, u in enumerate(units) if i and u.idr), len(units))
    first_gop = [u.nals for u in units[:second_idr]]
    pictures = [u.pictures_only for u in units if u.p_picture]
    realtime(client, itertools.chain(first_gop, itertools.cycle(pictures)))


def send_fua_endless(client: Client) -> None:
    rtp = client.rtp
    idr = next((n for u in client.clip.units for n in u.nals if n[0] & 0x1F == NAL_IDR), None)
    header = idr[0] if idr else 0x65
    body = idr[1:] if idr else bytes(range(1, 256))
    step = client.options.packet_size - 2
    middle = (body * (step // len(body) + 2))[:step]
    if re.search(b"\x00\x00[\x00-\x02]", middle + middle[:3]):
        middle = b"\xa5" * step  # never a start code, whatever a parser looks for
    indicator = (header & 0xE0) | NAL_FU_A
    kind = header & 0x1F
    timestamp = rtp.rtptime(client.media)
    log(f"{client.peer}: FU-A of a NAL unit of type {kind} that never ends")

    def packets() -> Iterator[bytes]:
        first = (body + middle)[:step]
        yield rtp.packet(bytes((indicator, 0x80 | kind)) + first, timestamp, False)
        fu = bytes((indicator, kind)) + middle
        while True:
            yield rtp.packet(fu, timestamp, False)

    client.paced(packets(), client.options.rate)


def send_unknown_channel(client: Client) -> None:
    used = set(client.channels)
    channel = next(c for c in (9, 10, 11, 200) if c not in used)
    rtp = RtpPacketiser(channel, client.options.packet_size)
    payload = b"\x01" + b"\xa5" * (client.options.packet_size - 1)
    log(f"{client.peer}: frames on channel {channel}, set up: {sorted(used)}")

    def packets() -> Iterator[bytes]:
        started = time.monotonic()
        while True:
            elapsed = time.monotonic() - started
            yield rtp.packet(payload, rtp.rtptime(client.media + elapsed), True)

    client.paced(packets(), client.options.rate)


def send_endless_line(client: Client) -> None:
    noise = (_LINE_SAFE * (CHUNK // len(_LINE_SAFE) + 1))[:CHUNK]
    client.paced(itertools.repeat(noise), client.options.rate)


def send_garbage_rtp(client: Client) -> None:
    channel = client.channels[0]
    size = client.options.packet_size

    def packets() -> Iterator[bytes]:
        while True:
            yield interleaved(channel, os.urandom(random.randint(12, size + 12)))

    client.paced(packets(), client.options.rate)


def send_garbage_h264(client: Client) -> None:
    rtp = client.rtp
    size = client.options.packet_size

    def packets() -> Iterator[bytes]:
        started = time.monotonic()
        for n in itertools.count(1):
            payload = os.urandom(random.randint(1, size))
            timestamp = rtp.rtptime(client.media + time.monotonic() - started)
            yield rtp.packet(payload, timestamp, n % 25 == 0)

    client.paced(packets(), client.options.rate)


def send_silent(client: Client) -> None:
    client.stop.wait()


def send_trickle(client: Client) -> None:
    clip = client.clip
    nals = clip.units[0].nals if clip.units else [b"\x65" + b"\xa5" * 4000]
    data = client.rtp.access_unit(nals, client.rtp.rtptime(client.media))
    rate = client.options.rate or 1.0
    for index in itertools.count():
        client.send(data[index % len(data) : index % len(data) + 1])
        if client.stop.wait(1 / rate):
            return


SENDERS: dict[str, Callable[[Client], None]] = {
    "good": send_good,
    "flood": send_flood,
    "no-keyframe": send_no_keyframe,
    "fua-endless": send_fua_endless,
    "unknown-channel": send_unknown_channel,
    "endless-line": send_endless_line,
    "garbage-rtp": send_garbage_rtp,
    "garbage-h264": send_garbage_h264,
    "trickle": send_trickle,
    "silent": send_silent,
}


def padding(n: int) -> bytes:
    """Exactly ``n`` (>= 15) bytes of SDP attribute lines ``a=x-padding:xxx...``."""
    lines = []
    while n >= 2000:
        lines.append(b"a=x-padding:" + b"x" * 986 + b"\r\n")
        n -= 1000
    lines.append(b"a=x-padding:" + b"x" * (n - 14) + b"\r\n")
    return b"".join(lines)


def huge_body(sdp: bytes) -> Iterator[bytes]:
    """HUGE_CONTENT_LENGTH bytes: the SDP, then padding lines, in CHUNK-sized pieces."""
    block = padding(64_000)
    head_size = HUGE_CONTENT_LENGTH % len(block)
    while head_size < len(sdp) + 15:
        head_size += len(block)
    yield sdp + padding(head_size - len(sdp))
    for _ in range((HUGE_CONTENT_LENGTH - head_size) // len(block)):
        yield block


# --- the server -----------------------------------------------------------------------------


@dataclass
class Options:
    mode: str
    rate: float
    path: str
    fps: float
    packet_size: int
    good_first: float


class Server:
    def __init__(self, options: Options, clip: Clip, address: str, port: int) -> None:
        self.options = options
        self.clip = clip
        self.listener = socket.create_server((address, port), backlog=64)
        self.listener.settimeout(0.1)
        self.stopping = threading.Event()
        self.clients: list[tuple[Client, threading.Thread]] = []

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, peer = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = Client(sock, f"{peer[0]}:{peer[1]}", self)
            thread = threading.Thread(target=client.run, name=f"client-{peer[1]}", daemon=True)
            thread.start()
            self.clients = [(c, t) for c, t in self.clients if t.is_alive()]
            self.clients.append((client, thread))
        self.listener.close()
        for client, _ in self.clients:
            client.close()
        deadline = time.monotonic() + 0.5
        for _, thread in self.clients:
            thread.join(max(0.0, deadline - time.monotonic()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--clip", help="Annex-B H.264 elementary stream (.h264)")
    parser.add_argument("--rate", type=float, help="bytes per second on the wire; 0: unpaced")
    parser.add_argument("--path", default="/stream")
    parser.add_argument("--fps", type=float, default=0.0, help="default: the clip's, or 25")
    parser.add_argument("--packet-size", type=int, default=1400, help="RTP payload bytes")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument(
        "--good-first", type=float, default=0.0, metavar="SECONDS", help="play the clip first"
    )
    args = parser.parse_args()
    if args.mode in CLIP_MODES and not args.clip:
        parser.error(f"--mode {args.mode} sends pictures: it needs --clip")
    if args.good_first and (not args.clip or args.mode in CLIP_MODES | DESCRIBE_MODES):
        parser.error("--good-first needs --clip and a mode that misbehaves after PLAY")
    if not 100 <= args.packet_size <= 65000:
        parser.error("--packet-size must be between 100 and 65000")
    clip = Clip.load(args.clip) if args.clip else Clip.builtin()
    if args.mode == "no-keyframe" and not any(u.p_picture for u in clip.units):
        parser.error("--mode no-keyframe needs a clip with P pictures")
    rate = args.rate if args.rate is not None else DEFAULT_RATES.get(args.mode, 0.0)
    if args.mode == "flood" and rate <= 0:
        parser.error("--mode flood needs a --rate above 0")
    options = Options(args.mode, rate, args.path, args.fps, args.packet_size, args.good_first)
    try:
        server = Server(options, clip, args.address, args.port)
    except OSError as exc:
        raise SystemExit(f"cannot listen on {args.address}:{args.port}: {exc.strerror}") from None

    def stop(_signum: int, _frame: FrameType | None) -> None:
        server.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(
        f"mode {args.mode}, rate {rate:g} B/s, {len(clip.units)} access units"
        f" at {args.fps or clip.fps:g} fps, path {args.path}"
    )
    print(f"READY {args.port}", flush=True)
    server.serve()
    log("stopped")


if __name__ == "__main__":
    main()
