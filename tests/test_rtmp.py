"""RTMP push: to a real FFmpeg RTMP listener (plain and behind TLS), to a scripted server (its
chunks parsed by gateway.push.rtmp.chunk) that refuses, pings or stalls, and the FLV/AVC pieces
checked against what FFmpeg writes."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import select
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import pytest
from helpers import free_port, wait_until

from gateway.media.bitstream import nal
from gateway.media.normalize import Normalizer
from gateway.media.packet import Packet, Track
from gateway.push.publisher import PushUrl
from gateway.push.rtmp.amf0 import AmfError, AmfValue, EcmaArray
from gateway.push.rtmp.amf0 import decode as amf_decode
from gateway.push.rtmp.amf0 import encode as amf_encode
from gateway.push.rtmp.chunk import ChunkReader
from gateway.push.rtmp.flv import avc_decoder_config, avc_frame
from gateway.push.rtmp.publisher import RtmpPublisher
from gateway.push.rtmp.session import split_path
from gateway.push.transport import PushError, TlsPolicy, open_uplink
from gateway.source.sim import SimSource

# `make test` installs ffmpeg; elsewhere the tests that need it are skipped with the reason.
needs_ffmpeg = pytest.mark.skipif(
    (shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None)
    and os.environ.get("CAMERA_GATEWAY_STRICT") != "1",
    reason="needs Debian's ffmpeg and ffprobe (run `make test`)",
)

FPS = 25
SIM_URL = f"sim://t?fps={FPS}&gop=1&width=320&height=240&bitrate=3000"
SECONDS = 3
# Annex B SPS + PPS as PyAV's libx264 gives them for the sim camera (320x240 baseline).
SIM_EXTRADATA = bytes.fromhex("000000016742c014da0507e840000003004000000ca3c50aa80000000168ce3c80")


@dataclasses.dataclass
class Clip:
    tracks: tuple[Track, ...]
    packets: list[Packet]

    @property
    def video(self) -> Track:
        return self.tracks[0]


@pytest.fixture(scope="module")
def clip() -> Iterator[Clip]:
    """A few seconds of the sim camera, through the normalizer (as the forwarder gets them)."""
    source = SimSource(SIM_URL, camera_id="t")
    tracks = source.open()
    normalizer = Normalizer(tracks, camera_id="t")
    packets: list[Packet] = []
    try:
        while len(packets) < SECONDS * FPS:
            packet = normalizer.push(source.read())
            if packet is not None:
                packets.append(packet)
    finally:
        source.close()
    yield Clip(tracks, packets[: SECONDS * FPS])


# -- a real centre: FFmpeg in RTMP listen mode -------------------------------------------------


def _listening(port: int) -> bool:
    """Whether something listens on ``port`` (a test connection would use up -listen 1)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    return True
    return False


class FfmpegCentre:
    """``ffmpeg -listen 1 -i rtmp://...`` writing what it receives to an FLV file."""

    def __init__(self, tmp_path: Path, path: str = "/live/cam") -> None:
        self.port = free_port()
        self.out = tmp_path / f"received-{self.port}.flv"
        self.log = tmp_path / f"ffmpeg-{self.port}.log"
        url = f"rtmp://127.0.0.1:{self.port}{path}"
        command = ["ffmpeg", "-nostdin", "-v", "error", "-listen", "1", "-i", url]
        command += ["-c", "copy", "-f", "flv", str(self.out)]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        wait_until(lambda: _listening(self.port), 10, "ffmpeg to listen", interval=0.02)

    def finish(self) -> None:
        """Wait for FFmpeg to end (it does when the publisher disconnects)."""
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("ffmpeg did not end after the publisher closed") from None
        assert self.process.returncode == 0, self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def centre(tmp_path: Path) -> Iterator[Callable[..., FfmpegCentre]]:
    started: list[FfmpegCentre] = []

    def start(path: str = "/live/cam") -> FfmpegCentre:
        server = FfmpegCentre(tmp_path, path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def probe(path: Path) -> dict[str, Any]:
    result = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-count_packets", "-show_streams", "-show_packets"),
            *("-of", "json", str(path)),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    info: dict[str, Any] = json.loads(result.stdout)
    return info


def decode_errors(path: Path) -> str:
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    return result.stdout + result.stderr


def publish(
    port: int,
    tracks: tuple[Track, ...],
    packets: list[Packet],
    *,
    path: str = "/live/cam",
    tls: TlsPolicy | None = None,
) -> tuple[RtmpPublisher, float]:
    scheme = "rtmps" if tls else "rtmp"
    url = PushUrl.parse(f"{scheme}://127.0.0.1:{port}{path}")
    sock = open_uplink(url.host, url.port, tls=tls, timeout=5.0)
    publisher = RtmpPublisher(sock, url, tracks, timeout=5.0)
    try:
        publisher.start()
        for index, packet in enumerate(packets):
            publisher.send(packet)
            if index % 10 == 0:
                publisher.poll()
    finally:
        began = time.monotonic()
        publisher.close()
        closing = time.monotonic() - began
    return publisher, closing


def streams(info: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in info["streams"] if s["codec_type"] == kind]


def packets_of(info: dict[str, Any], index: int) -> list[dict[str, Any]]:
    return [p for p in info["packets"] if p["stream_index"] == index]


def check_video(out: Path, sent: int) -> list[float]:
    """Assert the received FLV holds the sent H.264 cleanly; return the video times."""
    info = probe(out)
    (video,) = streams(info, "video")
    assert video["codec_name"] == "h264"
    assert (video["width"], video["height"]) == (320, 240)
    assert abs(int(video["nb_read_packets"]) - sent) <= 1
    packets = packets_of(info, int(video["index"]))
    assert packets[0]["flags"].startswith("K")
    times = [float(p["dts_time"]) for p in packets]
    assert all(b > a for a, b in itertools.pairwise(times)), times
    assert decode_errors(out) == ""
    return times


@needs_ffmpeg
def test_push_h264_to_ffmpeg(clip: Clip, centre: Callable[..., FfmpegCentre]) -> None:
    server = centre()
    publisher, closing = publish(server.port, clip.tracks, clip.packets)
    server.finish()
    assert publisher.skipped == []
    assert publisher.bytes_sent > sum(len(p.data) for p in clip.packets)
    assert closing < 1.0
    assert max(len(p.data) for p in clip.packets) > 4096  # some messages span several chunks
    times = check_video(server.out, len(clip.packets))
    assert times[0] == 0.0
    assert times[-1] == pytest.approx((len(clip.packets) - 1) / FPS, abs=0.002)


@needs_ffmpeg
def test_push_h264_and_aac_to_ffmpeg(clip: Clip, centre: Callable[..., FfmpegCentre]) -> None:
    audio_track, audio = _aac(SECONDS)
    packets = sorted([*clip.packets, *audio], key=lambda p: p.seconds)
    server = centre()
    publish(server.port, (clip.video, audio_track), packets)
    server.finish()
    check_video(server.out, len(clip.packets))
    info = probe(server.out)
    (sound,) = streams(info, "audio")
    assert sound["codec_name"] == "aac"
    assert (int(sound["sample_rate"]), sound["channels"]) == (48000, 2)
    assert abs(int(sound["nb_read_packets"]) - len(audio)) <= 1


def _aac(seconds: float) -> tuple[Track, list[Packet]]:
    """A tone encoded to raw AAC frames with its AudioSpecificConfig, as a camera sends them."""
    import numpy as np

    encoder = av.CodecContext.create("aac", "w")
    encoder.sample_rate = 48000
    encoder.layout = "stereo"
    encoder.format = "fltp"
    encoder.open()
    frames = []
    for n in range(int(seconds * 48000 / 1024)):
        t = (np.arange(1024) + n * 1024) / 48000
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate = 48000
        frame.pts = n * 1024
        frames.append(frame)
    encoded = [p for f in [*frames, None] for p in encoder.encode(f)]
    tb = Fraction(1, 48000)
    track = Track(1, "audio", "aac", tb, sample_rate=48000, channels=2, extradata=encoder.extradata)
    start = encoded[0].pts
    packets = [
        Packet(
            1,
            bytes(p),
            (p.pts or 0) - (start or 0),
            (p.dts or 0) - (start or 0),
            1024,
            tb,
            True,
            False,
            0.0,
        )
        for p in encoded
    ]
    return track, packets


@needs_ffmpeg
def test_timestamps_past_24_bits_use_extended_timestamps(
    clip: Clip, centre: Callable[..., FfmpegCentre]
) -> None:
    jump = 5 * 3600 * FPS  # five hours later: more than 0xFFFFFF ms since the first packet
    packets = clip.packets[:FPS] + [
        dataclasses.replace(p, pts=p.pts + jump, dts=p.dts + jump) for p in clip.packets[FPS:]
    ]
    server = centre()
    publish(server.port, clip.tracks, packets)
    server.finish()
    times = check_video(server.out, len(packets))
    assert times[FPS - 1] == pytest.approx((FPS - 1) / FPS, abs=0.002)
    assert times[FPS] == pytest.approx(5 * 3600 + 1.0, abs=0.002)
    assert times[-1] == pytest.approx(5 * 3600 + (len(packets) - 1) / FPS, abs=0.002)


def _split_before_slice(packet: Packet, extradata: bytes) -> list[Packet]:
    """A keyframe as some cameras send it: parameter sets and SEI in one packet, then the slice
    in a second one with the same timestamps (a continuation)."""
    data = extradata + packet.data
    cut = data.find(b"\x00\x00\x01\x65")  # the IDR slice (x264: nal_ref_idc 3)
    assert cut > 0
    cut -= 1 if data[cut - 1] == 0 else 0
    head = dataclasses.replace(packet, data=data[:cut])
    return [head, dataclasses.replace(packet, data=data[cut:], keyframe=False, continuation=True)]


@needs_ffmpeg
def test_parameter_sets_sent_apart_from_the_picture(
    clip: Clip, centre: Callable[..., FfmpegCentre]
) -> None:
    assert clip.video.extradata is not None
    packets: list[Packet] = []
    for packet in clip.packets:
        split = packet.keyframe and not packet.continuation
        packets.extend(_split_before_slice(packet, clip.video.extradata) if split else [packet])
    assert len(packets) == len(clip.packets) + SECONDS
    heads = [p.data for p in packets if p.keyframe]
    assert heads and all(b"\x00\x00\x01\x65" not in d for d in heads)
    server = centre()
    publish(server.port, clip.tracks, packets)
    server.finish()
    check_video(server.out, len(clip.packets))  # one FLV tag per picture


# -- RTMPS ---------------------------------------------------------------------------------------


class TlsRelay:
    """TLS in front of FFmpeg's plain RTMP listener (FFmpeg 5.1 refuses ``-listen`` for rtmps)."""

    def __init__(self, target: int, cert: Path, key: Path) -> None:
        self._target = target
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn, _ = self._listener.accept()
        self._listener.close()
        try:
            secure = self._context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            conn.close()
            return
        plain = socket.create_connection(("127.0.0.1", self._target))
        try:
            self._pump(secure, plain)
        finally:
            plain.close()
            secure.close()

    @staticmethod
    def _pump(secure: ssl.SSLSocket, plain: socket.socket) -> None:
        up = True
        while True:
            ready: list[socket.socket] | None = [secure] if up and secure.pending() else None
            if ready is None:
                watch: list[socket.socket] = [plain, secure] if up else [plain]
                ready, _, _ = select.select(watch, [], [], 10)
                if not ready:
                    return
            if secure in ready:
                try:
                    data = secure.recv(65536)
                except (ssl.SSLError, OSError):
                    data = b""
                if data:
                    plain.sendall(data)
                else:
                    up = False
                    plain.shutdown(socket.SHUT_WR)
            if plain in ready:
                data = plain.recv(65536)
                if not data:
                    with contextlib.suppress(ssl.SSLError, OSError, ValueError):
                        secure.unwrap()
                    return
                secure.sendall(data)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=centre.test"),
            *("-addext", "subjectAltName=DNS:centre.test,IP:127.0.0.1"),
        ],
        capture_output=True,
        check=True,
    )
    return cert, key


@needs_ffmpeg
def test_push_over_rtmps(
    clip: Clip, centre: Callable[..., FfmpegCentre], certificate: tuple[Path, Path]
) -> None:
    server = centre()
    relay = TlsRelay(server.port, *certificate)
    packets = clip.packets[: 2 * FPS]
    _, closing = publish(
        relay.port, clip.tracks, packets, tls=TlsPolicy(ca_file=str(certificate[0]))
    )
    server.finish()
    check_video(server.out, len(packets))
    assert closing < 1.0


def test_rtmps_with_an_untrusted_certificate_is_refused(certificate: tuple[Path, Path]) -> None:
    relay = TlsRelay(free_port(), *certificate)
    with pytest.raises(PushError, match="not trusted"):
        open_uplink("127.0.0.1", relay.port, tls=TlsPolicy(), timeout=2.0)


# -- a scripted centre: refusals, pings, acknowledgements, stalls --------------------------------


class ScriptedCentre:
    """An RTMP server that follows a script, in a thread; records what the publisher sent."""

    def __init__(
        self,
        *,
        connect: str = "ok",
        publish_status: tuple[str, str, str] = (
            "status",
            "NetStream.Publish.Start",
            "published",
        ),
        after_publish: Callable[[ScriptedCentre], None] | None = None,
        on_video: Callable[[ScriptedCentre], None] | None = None,
        receive_buffer: int | None = None,
        handshake: bool = True,
    ) -> None:
        self.connect_reply = connect
        self.publish_status = publish_status
        self.after_publish = after_publish
        self.on_video = on_video
        self.handshake = handshake
        self.received: list[tuple[int, int, bytes]] = []
        self.written = 0
        self.done = threading.Event()
        self.release = threading.Event()
        self.conn: socket.socket | None = None
        self._listener = socket.socket()
        if receive_buffer:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(1)
        self.port = self._listener.getsockname()[1]
        self._buffer = b""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    # protocol helpers ---------------------------------------------------------------------------

    def send(self, csid: int, kind: int, payload: bytes, stream: int = 0) -> None:
        assert self.conn is not None
        header = bytes((csid,)) + bytes(3) + len(payload).to_bytes(3, "big") + bytes((kind,))
        out = [header + stream.to_bytes(4, "little")]
        for pos in range(0, len(payload), 128):
            if pos:
                out.append(bytes((0xC0 | csid,)))
            out.append(payload[pos : pos + 128])
        data = b"".join(out)
        self.conn.sendall(data)
        self.written += len(data)

    def command(self, *values: object, stream: int = 0) -> None:
        # What a test scripts is AMF0 data; the encoder refuses anything else at run time.
        self.send(3, 20, amf_encode(*cast(tuple[AmfValue, ...], values)), stream)

    def _take(self, size: int) -> bytes:
        assert self.conn is not None
        while len(self._buffer) < size:
            data = self.conn.recv(65536)
            if not data:
                raise EOFError
            self._buffer += data
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def messages(self) -> Iterator[tuple[int, int, bytes]]:
        """Messages from the publisher, put together by the project's own chunk parser."""
        assert self.conn is not None
        reader = ChunkReader()
        data, self._buffer = self._buffer, b""
        while True:
            for message in reader.feed(data):
                received = (message.kind, message.stream, message.payload)
                self.received.append(received)
                yield received
            try:
                data = self.conn.recv(65536)
            except OSError:
                return
            if not data:
                return

    def commands(self) -> list[str]:
        return [str(amf_decode(p)[0]) for kind, _, p in self.received if kind == 20]

    # script ---------------------------------------------------------------------------------

    def _run(self) -> None:
        conn, _ = self._listener.accept()
        self.conn = conn
        try:
            if self.handshake:
                self._serve()
            else:
                self.release.wait(10)
        except (OSError, EOFError):
            pass
        finally:
            self.done.set()
            conn.close()
            self._listener.close()

    def _serve(self) -> None:
        c0c1 = self._take(1 + 1536)
        assert c0c1[0] == 3
        s1 = os.urandom(1536)
        assert self.conn is not None
        self.conn.sendall(b"\x03" + s1 + c0c1[1:])
        self.written += 1 + 2 * 1536
        assert self._take(1536) == s1  # C2 echoes S1
        for kind, _, payload in self.messages():
            if kind == 9 and payload[1] == 1 and self.on_video is not None:  # a picture
                self.on_video(self)
            if kind != 20:
                continue
            name, transaction, *_ = amf_decode(payload)
            if name == "connect":
                if self.connect_reply == "close":
                    return
                if self.connect_reply != "ok":
                    info = {
                        "level": "error",
                        "code": "NetConnection.Connect.Rejected",
                        "description": self.connect_reply,
                    }
                    self.command("_error", transaction, None, info)
                    continue
                self.send(2, 5, struct.pack(">I", 2_500_000))
                self.send(2, 6, struct.pack(">IB", 2_500_000, 2))
                ok = {
                    "level": "status",
                    "code": "NetConnection.Connect.Success",
                    "description": "Connection succeeded. " * 10,  # more than one chunk
                }
                self.command("_result", transaction, {"fmsVer": "FMS/3,0,1,123"}, ok)
            elif name == "createStream":
                self.command("_result", transaction, None, 1.0)
            elif name == "publish":
                level, code, description = self.publish_status
                status = {"level": level, "code": code, "description": description}
                self.command("onStatus", 0.0, None, status, stream=1)
                if level == "status" and self.after_publish is not None:
                    self.after_publish(self)


def sim_track() -> Track:
    return Track(0, "video", "h264", Fraction(1, 90000), 320, 240, extradata=SIM_EXTRADATA)


def connect_to(
    server: ScriptedCentre, path: str = "/live/cam", timeout: float = 2.0
) -> RtmpPublisher:
    url = PushUrl.parse(f"rtmp://127.0.0.1:{server.port}{path}")
    sock = open_uplink(url.host, url.port, tls=None, timeout=timeout)
    return RtmpPublisher(sock, url, (sim_track(),), timeout=timeout)


def refused(server: ScriptedCentre, path: str = "/live/cam") -> PushError:
    publisher = connect_to(server, path)
    try:
        with pytest.raises(PushError) as caught:
            publisher.start()
    finally:
        publisher.close()
        server.release.set()
    return caught.value


def test_connect_refused_for_credentials_is_an_auth_error() -> None:
    server = ScriptedCentre(
        connect="[ AccessManager.Reject ] : [ code=403 need auth; authmod=adobe ]"
    )
    error = refused(server)
    assert error.auth
    assert error.reason.startswith("the centre refused application 'live': ")
    assert "need auth" in error.reason


def test_connect_closed_by_the_server_names_the_application() -> None:
    error = refused(ScriptedCentre(connect="close"), "/wrongapp/cam")
    assert not error.auth
    assert "'wrongapp'" in error.reason
    assert "closed the connection" in error.reason


def test_bad_stream_name_is_refused_without_showing_the_key() -> None:
    status = ("error", "NetStream.Publish.BadName", "cam?key=s3cret is already publishing")
    server = ScriptedCentre(publish_status=status)
    error = refused(server, "/live/cam?key=s3cret")
    assert not error.auth
    assert "NetStream.Publish.BadName" in error.reason
    assert "s3cret" not in error.reason
    # the stream name goes with its query string; the application is the first segment
    commands = [amf_decode(p) for k, _, p in server.received if k == 20]
    connect = next(c for c in commands if c[0] == "connect")
    assert isinstance(connect[2], dict)
    assert connect[2]["app"] == "live"
    assert connect[2]["tcUrl"] == f"rtmp://127.0.0.1:{server.port}/live"
    assert connect[2]["type"] == "nonprivate"
    publish = next(c for c in commands if c[0] == "publish")
    assert publish[3:] == ["cam?key=s3cret", "live"]
    assert server.commands() == ["connect", "releaseStream", "FCPublish", "createStream", "publish"]


def test_unauthorized_publish_is_an_auth_error() -> None:
    status = ("error", "NetStream.Publish.Unauthorized", "Authentication failed")
    error = refused(ScriptedCentre(publish_status=status))
    assert error.auth
    assert "Authentication failed" in error.reason


def test_a_silent_server_times_out_in_the_handshake() -> None:
    server = ScriptedCentre(handshake=False)
    publisher = connect_to(server, timeout=0.5)
    began = time.monotonic()
    with pytest.raises(PushError, match=r"no answer to the RTMP handshake within 0.5 s"):
        publisher.start()
    assert time.monotonic() - began < 1.5
    publisher.close()
    server.release.set()


def test_not_an_rtmp_server() -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        conn, _ = listener.accept()
        conn.recv(100)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    url = PushUrl.parse(f"rtmp://127.0.0.1:{listener.getsockname()[1]}/live/cam")
    publisher = RtmpPublisher(
        open_uplink(url.host, url.port, tls=None, timeout=2), url, (sim_track(),), timeout=2
    )
    with pytest.raises(PushError, match=r"not an RTMP server \(handshake version 72\)"):
        publisher.start()
    publisher.close()
    listener.close()


def test_nobody_listening() -> None:
    with pytest.raises(PushError, match="connection refused"):
        open_uplink("127.0.0.1", free_port(), tls=None, timeout=2)


def test_hevc_cannot_be_sent() -> None:
    hevc = Track(0, "video", "hevc", Fraction(1, 90000), 320, 240)
    alaw = Track(1, "audio", "pcm_alaw", Fraction(1, 8000), sample_rate=8000, channels=1)
    server = ScriptedCentre()
    url = PushUrl.parse(f"rtmp://127.0.0.1:{server.port}/live/cam")
    publisher = RtmpPublisher(
        open_uplink(url.host, url.port, tls=None, timeout=2), url, (hevc, alaw), timeout=2
    )
    assert publisher.skipped == [hevc, alaw]
    with pytest.raises(PushError) as caught:
        publisher.start()
    assert caught.value.reason == "hevc cannot be sent over RTMP; use rtsp:// or rtsps://"
    assert publisher.bytes_sent == 0
    publisher.close()
    server.release.set()


def keyframe(size: int, dts: int) -> Packet:
    data = SIM_EXTRADATA + b"\x00\x00\x00\x01\x65" + os.urandom(size)
    return Packet(0, data, dts, dts, 3600, Fraction(1, 90000), True, True, 0.0)


def test_pings_are_answered_and_bytes_acknowledged() -> None:
    def ping(server: ScriptedCentre) -> None:
        server.send(2, 5, struct.pack(">I", 1000))  # acknowledge every 1000 bytes
        server.send(2, 4, struct.pack(">HI", 6, 123456))  # ping request

    server = ScriptedCentre(after_publish=ping)
    publisher = connect_to(server)
    publisher.start()
    publisher.send(keyframe(10_000, 0))
    pong = struct.pack(">HI", 7, 123456)

    def answered() -> bool:
        publisher.poll()
        return any(k == 4 and p == pong for k, _, p in server.received)

    wait_until(answered, 3, "the ping response", interval=0.02)
    acks = [struct.unpack(">I", p)[0] for k, _, p in server.received if k == 3]
    assert acks
    assert server.written - 1000 < acks[-1] <= server.written
    kinds = [k for k, _, _ in server.received]
    assert kinds[:2] == [1, 20]  # Set Chunk Size, then connect
    assert 18 in kinds and 9 in kinds  # onMetaData, video
    assert publisher.bytes_sent > 10_000
    # the server hangs up: the next poll says so
    assert server.conn is not None
    server.conn.shutdown(socket.SHUT_RDWR)
    server.release.set()
    with pytest.raises(PushError, match="the centre closed the connection"):
        wait_until(publisher.poll, 3, "poll to notice")
    began = time.monotonic()
    publisher.close()
    assert time.monotonic() - began < 1.0


def test_send_after_a_reset_reports_the_connection_lost() -> None:
    def reset(server: ScriptedCentre) -> None:
        assert server.conn is not None
        server.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        server.conn.close()

    server = ScriptedCentre(on_video=reset)
    publisher = connect_to(server)
    publisher.start()
    publisher.send(keyframe(1000, 0))
    assert server.done.wait(3)
    with pytest.raises(PushError, match="connection to the centre lost"):
        for n in range(1, 50):
            publisher.send(keyframe(1000, n * 3600))
            time.sleep(0.01)
    publisher.close()
    server.release.set()


def test_a_stalled_uplink_is_reported_and_close_stays_bounded() -> None:
    def stall(server: ScriptedCentre) -> None:
        server.release.wait(10)  # stop reading

    server = ScriptedCentre(after_publish=stall, receive_buffer=4096)
    publisher = connect_to(server, timeout=0.5)
    publisher.start()
    began = time.monotonic()
    with pytest.raises(PushError, match=r"uplink stalled \(nothing sent for 0.5 s\)"):
        for n in range(200):
            publisher.send(keyframe(64_000, n * 3600))
    assert time.monotonic() - began < 5
    began = time.monotonic()
    publisher.close()
    assert time.monotonic() - began <= 1.0
    server.release.set()


def test_close_is_polite_and_bounded() -> None:
    server = ScriptedCentre()
    publisher = connect_to(server)
    publisher.start()
    publisher.send(keyframe(100, 0))
    began = time.monotonic()
    publisher.close()
    publisher.close()  # twice is harmless
    assert time.monotonic() - began <= 1.0
    server.done.wait(3)
    assert server.commands()[-2:] == ["FCUnpublish", "deleteStream"]
    server.release.set()


# -- pieces --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "app", "name"),
    [
        ("/live/cam", "live", "cam"),
        ("/live/site-1/hall?token=a/b", "live", "site-1/hall?token=a/b"),
        ("/app/key?x=1&y=2", "app", "key?x=1&y=2"),
        ("/live", "live", ""),
        ("/", "", ""),
    ],
)
def test_split_path(path: str, app: str, name: str) -> None:
    assert split_path(path) == (app, name)


def test_no_stream_name_is_refused_before_connecting() -> None:
    server = ScriptedCentre()
    error = refused(server, "/live")
    assert "no stream name" in error.reason
    assert server.received == []


@needs_ffmpeg
@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "gray"])
def test_avc_decoder_config_matches_ffmpeg(tmp_path: Path, pix_fmt: str) -> None:
    raw, flv = tmp_path / "x.h264", tmp_path / "x.flv"
    subprocess.run(
        [
            *(
                "ffmpeg",
                "-nostdin",
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=160x120:rate=25",
            ),
            *("-frames:v", "2", "-pix_fmt", pix_fmt, "-c:v", "libx264", "-bf", "0", str(raw)),
        ],
        check=True,
    )
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(raw), "-c", "copy", str(flv)], check=True
    )
    assert avc_decoder_config(raw.read_bytes()) == _flv_avcc(flv.read_bytes())


@needs_ffmpeg
def test_avc_decoder_config_of_the_sim_camera(clip: Clip, tmp_path: Path) -> None:
    raw, flv = tmp_path / "sim.h264", tmp_path / "sim.flv"
    assert clip.video.extradata is not None
    raw.write_bytes(clip.video.extradata + b"".join(p.data for p in clip.packets[:5]))
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-r", "25", "-i", str(raw), "-c", "copy", str(flv)],
        check=True,
    )
    expected = _flv_avcc(flv.read_bytes())
    assert avc_decoder_config(clip.video.extradata) == expected
    # from a keyframe that carries its parameter sets (no extradata)
    assert avc_decoder_config(clip.video.extradata + clip.packets[0].data) == expected
    # version 1, profile/compatibility/level from the SPS, 4-byte lengths, one SPS of its size
    sps = clip.video.extradata[4 : clip.video.extradata.index(b"\x00\x00\x00\x01", 4)]
    assert expected[:8] == bytes((1, *sps[1:4], 0xFF, 0xE1)) + len(sps).to_bytes(2, "big")
    assert avc_decoder_config(expected) == expected  # already avcC: kept
    assert avc_decoder_config(b"\x00\x00\x00\x01\x65\x88") is None


def _flv_avcc(data: bytes) -> bytes:
    """The body of the first AVC sequence header tag of an FLV file."""
    pos = 13
    while pos < len(data):
        kind, size = data[pos], int.from_bytes(data[pos + 1 : pos + 4], "big")
        body = data[pos + 11 : pos + 11 + size]
        if kind == 9 and body[1] == 0:
            return body[5:]
        pos += 11 + size + 4
    raise AssertionError("no AVC sequence header")


def test_annex_b_to_length_prefixed() -> None:
    aud, sei = b"\x09\xf0", b"\x06\x05\x01\x80"
    sps, pps = b"\x67\x42\xc0\x14", b"\x68\xce\x3c\x80"
    idr = b"\x65\x88\x00\x00\x03\x01\x84"
    annexb = b"".join(
        [
            *(b"\x00\x00\x00\x01" + aud, b"\x00\x00\x01" + sps, b"\x00\x00\x00\x01" + pps),
            *(b"\x00\x00\x01" + sei, b"\x00\x00\x00\x01" + idr + b"\x00"),
        ]
    )
    assert list(nal.units(annexb)) == [aud, sps, pps, sei, idr]
    frame = avc_frame(annexb, False, 40)
    assert frame.picture and frame.keyframe  # an IDR slice makes it a keyframe
    assert b"".join(frame.parts) == b"\x17\x01\x00\x00\x28" + b"".join(
        len(n).to_bytes(4, "big") + n for n in (sei, idr)
    )
    inter = avc_frame(b"\x00\x00\x01\x41\x9a", False, -40)
    assert inter.picture and not inter.keyframe
    assert b"".join(inter.parts)[:5] == b"\x27\x01\xff\xff\xd8"
    assert not avc_frame(b"\x00\x00\x00\x01" + aud + b"\x00\x00\x01" + sei, True, 0).picture


def test_amf0_round_trip() -> None:
    values: list[AmfValue] = [
        "connect",
        1.0,
        {"app": "live", "flag": True, "nested": {"n": -2.5}},
        None,
        EcmaArray(width=320.0, stereo=False),
        ["a", 2.0],
        "é" * 3,
    ]
    assert amf_decode(amf_encode(*values)) == values
    assert isinstance(amf_decode(amf_encode(EcmaArray(a=1.0)))[0], EcmaArray)
    with pytest.raises(AmfError, match="truncated AMF0 string"):
        amf_decode(amf_encode("x") + b"\x02\x00\x05ab")
