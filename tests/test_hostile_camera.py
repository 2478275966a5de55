"""The hostile test camera itself: its good mode is a camera FFmpeg decodes without a complaint,
and every other mode misbehaves on the wire exactly as its documentation says."""

from __future__ import annotations

import base64
import itertools
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import SYSTEM_PYTHON, decode_errors, video_packets
from hostile import HostileCamera, RawRtspClient, StartHostile


def rtp_header(packet: bytes) -> tuple[int, bool, int, int, int]:
    """(version, marker, payload type, sequence number, timestamp)."""
    first, second, seq, timestamp = struct.unpack_from("!BBHI", packet)
    return first >> 6, bool(second & 0x80), second & 0x7F, seq, timestamp


def record(url: str, out: Path, seconds: float) -> subprocess.Popen[str]:
    """FFmpeg's RTSP client (TCP) copying ``seconds`` of the stream into ``out``."""
    return subprocess.Popen(
        [
            *("ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url),
            *("-t", str(seconds), "-c", "copy", "-y", str(out)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.camera
def test_the_good_mode_is_a_camera_ffmpeg_records_and_decodes_without_a_complaint(
    hostile: StartHostile, tmp_path: Path
) -> None:
    camera = hostile("good")
    out = tmp_path / "good.mkv"
    recorder = record(camera.url(), out, 5)  # the 4 s clip loops once
    _, errors = recorder.communicate(timeout=20)
    assert recorder.returncode == 0 and errors == ""
    assert decode_errors(out) == ""
    packets = video_packets(out)
    assert 120 <= len(packets) <= 130
    keyframes = [i for i, packet in enumerate(packets) if "K" in packet["flags"]]
    assert keyframes == list(range(0, len(packets), 25))


def test_the_handshake_is_a_cameras_and_silent_sends_nothing_after_play(
    hostile: StartHostile,
) -> None:
    camera = hostile("silent")
    with RawRtspClient(camera.url()) as client:
        status, headers, _ = client.request("OPTIONS")
        assert status == "RTSP/1.0 200 OK" and headers["cseq"] == "1"
        assert "DESCRIBE" in headers["public"] and "GET_PARAMETER" in headers["public"]

        status, headers, body = client.request("DESCRIBE")
        assert status == "RTSP/1.0 200 OK" and headers["cseq"] == "2"
        assert headers["content-type"] == "application/sdp"
        assert headers["content-base"] == camera.url() + "/"
        sdp = body.decode().split("\r\n")
        assert "m=video 0 RTP/AVP 96" in sdp and "a=rtpmap:96 H264/90000" in sdp
        assert "a=control:trackID=0" in sdp
        fmtp = next(line for line in sdp if line.startswith("a=fmtp:96 "))
        assert "packetization-mode=1" in fmtp
        sprop = fmtp.split("sprop-parameter-sets=")[1].split(";")[0].split(",")
        assert [base64.b64decode(p)[0] & 0x1F for p in sprop] == [7, 8]  # SPS, PPS

        udp = "Transport: RTP/AVP;unicast;client_port=5000-5001"
        assert (
            client.request("SETUP", f"{camera.url()}/trackID=0", (udp,))[0]
            == "RTSP/1.0 461 Unsupported Transport"
        )
        tcp = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1"
        status, headers, _ = client.request("SETUP", f"{camera.url()}/trackID=0", (tcp,))
        assert status == "RTSP/1.0 200 OK"
        assert headers["transport"].startswith("RTP/AVP/TCP;unicast;interleaved=0-1")
        assert headers["session"].endswith(";timeout=60")
        session = headers["session"].split(";")[0]

        status, headers, _ = client.request("GET_PARAMETER")
        assert status == "RTSP/1.0 200 OK" and headers["session"].startswith(session)
        status, headers, _ = client.request("PLAY")
        assert status == "RTSP/1.0 200 OK" and headers["cseq"] == "6"
        assert headers["rtp-info"].startswith(f"url={camera.url()}/trackID=0;seq=")

        client.send("GET_PARAMETER")
        client.sock.settimeout(1.5)
        with pytest.raises(TimeoutError):  # not a byte, and not closed either
            client.sock.recv(1)

    with RawRtspClient(camera.url().replace("/stream", "/other")) as client:
        assert client.request("DESCRIBE")[0] == "RTSP/1.0 404 Not Found"


@pytest.mark.camera
def test_flood_is_a_decodable_stream_at_the_byte_rate_asked_for(
    hostile: StartHostile, tmp_path: Path
) -> None:
    rate = 3_000_000
    camera = hostile("flood", rate=rate)
    out = tmp_path / "flood.mkv"
    recorder = record(camera.url(), out, 2)
    with RawRtspClient(camera.url()) as client:
        client.play()
        received = client.count_bytes(3.0)
    _, errors = recorder.communicate(timeout=20)
    assert recorder.returncode == 0 and errors == ""
    assert abs(received / 3.0 - rate) <= 0.2 * rate, f"{received / 3.0:.0f} B/s"
    assert decode_errors(out) == ""
    packets = video_packets(out)
    assert len(packets) >= 45 and "K" in packets[0]["flags"]


@pytest.mark.camera
def test_no_keyframe_sends_one_keyframe_and_never_another(hostile: StartHostile) -> None:
    camera = hostile("no-keyframe")
    result = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-read_intervals", "%+4"),
            *("-select_streams", "v:0", "-show_entries", "packet=flags", "-of", "csv=p=0"),
            camera.url(),
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    flags = result.stdout.split()
    assert len(flags) >= 90, result.stderr
    assert [i for i, f in enumerate(flags) if "K" in f] == [0]


def test_fua_endless_sends_a_start_fragment_then_middle_fragments_only(
    hostile: StartHostile,
) -> None:
    camera = hostile("fua-endless")
    with RawRtspClient(camera.url()) as client:
        client.play()
        frames = [client.frame() for _ in range(2000)]  # about 3 MB
    assert {channel for channel, _ in frames} == {0}
    headers = [rtp_header(packet) for _, packet in frames]
    assert {(version, marker, kind) for version, marker, kind, _, _ in headers} == {(2, False, 96)}
    assert len({timestamp for *_, timestamp in headers}) == 1
    seqs = [seq for _, _, _, seq, _ in headers]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
    fu = [(packet[12] & 0x1F, packet[13] & 0xC0, packet[13] & 0x1F) for _, packet in frames]
    assert fu[0] == (28, 0x80, 5)  # FU-A, start bit, IDR
    assert set(fu[1:]) == {(28, 0, 5)}  # never the start or the end bit again


@pytest.mark.camera
def test_good_first_plays_the_clip_before_the_misbehaviour_starts(hostile: StartHostile) -> None:
    camera = hostile("fua-endless", good_first=1.0)
    with RawRtspClient(camera.url()) as client:
        client.play()
        frames = [client.frame()[1] for _ in range(1000)]
    headers = [rtp_header(packet) for packet in frames]
    seqs = [h[3] for h in headers]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
    marked = [i for i, h in enumerate(headers) if h[1]]
    assert len(marked) == 25  # one second of pictures, each ending with the marker bit
    start = marked[-1] + 1
    assert (frames[start][12] & 0x1F, frames[start][13]) == (28, 0x80 | 5)  # FU-A start, IDR
    assert {(p[12] & 0x1F, p[13]) for p in frames[start + 1 :]} == {(28, 5)}
    timestamps = [headers[i][4] for i in [*marked, start]]
    assert all((b - a) % 2**32 == 3600 for a, b in itertools.pairwise(timestamps))


def test_unknown_channel_sends_frames_on_a_channel_never_set_up(hostile: StartHostile) -> None:
    camera = hostile("unknown-channel")
    with RawRtspClient(camera.url()) as client:
        client.play()
        channels = {client.frame()[0] for _ in range(1000)}
    assert channels == {9}


def test_endless_line_never_sends_a_line_end_or_a_frame(hostile: StartHostile) -> None:
    camera = hostile("endless-line")
    with RawRtspClient(camera.url()) as client:
        client.play()
        client.send("GET_PARAMETER")  # not answered either
        data = client.read_exactly(2_000_000)
    assert b"\r" not in data and b"\n" not in data and b"$" not in data


def test_huge_describe_announces_1_5_gb_and_sends_them_at_the_rate(hostile: StartHostile) -> None:
    camera = hostile("huge-describe", rate=2_000_000)
    with RawRtspClient(camera.url()) as client:
        client.send("DESCRIBE")
        status, headers = client.read_head()
        assert status == "RTSP/1.0 200 OK" and headers["cseq"] == "1"
        assert headers["content-type"] == "application/sdp"
        assert headers["content-length"] == "1500000000"
        assert client.read_exactly(5) == b"v=0\r\n"
        received = client.count_bytes(1.0)
    assert 1_500_000 <= received <= 2_500_000


def test_endless_header_never_ends_the_first_header_line(hostile: StartHostile) -> None:
    camera = hostile("endless-header")
    with RawRtspClient(camera.url()) as client:
        assert client.request("OPTIONS")[0] == "RTSP/1.0 200 OK"
        client.send("DESCRIBE")
        head = client.read_exactly(len("RTSP/1.0 200 OK\r\nX-Padding: "))
        assert head == b"RTSP/1.0 200 OK\r\nX-Padding: "
        data = client.read_exactly(2_000_000)
    assert b"\r" not in data and b"\n" not in data


def test_garbage_modes_send_random_bytes_in_well_formed_frames(hostile: StartHostile) -> None:
    with RawRtspClient(hostile("garbage-rtp").url()) as client:
        client.play()
        frames = [client.frame() for _ in range(300)]
    assert {channel for channel, _ in frames} == {0}
    assert len({packet[:12] for _, packet in frames}) == 300  # not even the RTP header holds

    with RawRtspClient(hostile("garbage-h264").url()) as client:
        client.play()
        frames = [client.frame() for _ in range(300)]
    headers = [rtp_header(packet) for _, packet in frames]
    assert {(channel, h[0], h[2]) for (channel, _), h in zip(frames, headers, strict=True)} == {
        (0, 2, 96)
    }
    seqs = [h[3] for h in headers]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
    assert len({packet[12] for _, packet in frames}) > 50  # random NAL headers


def test_trickle_sends_an_rtp_frame_one_byte_at_a_time(hostile: StartHostile) -> None:
    camera = hostile("trickle", rate=5)
    with RawRtspClient(camera.url()) as client:
        client.play()
        client.sock.settimeout(1.0)
        started = time.monotonic()
        data = b""
        while len(data) < 8:
            data += client.sock.recv(100)
        elapsed = time.monotonic() - started
    assert data[:2] == b"$\x00" and len(data) == 8
    assert 1.2 <= elapsed <= 2.5  # the first byte at once, then one every 0.2 s


@pytest.mark.parametrize(
    "python", [SYSTEM_PYTHON, sys.executable], ids=["system-python", "venv-python"]
)
def test_sigterm_stops_the_server_within_a_second_with_clients_attached(
    python: str, tmp_path: Path
) -> None:
    if not Path(python).exists():
        pytest.skip(f"{python} is not installed")
    camera = HostileCamera("fua-endless", tmp_path, python=python).start()
    try:
        playing = RawRtspClient(camera.url())
        playing.play()
        idle = RawRtspClient(camera.url())
        assert idle.request("OPTIONS")[0] == "RTSP/1.0 200 OK"
        reader = threading.Thread(target=playing.count_bytes, args=(10.0,), daemon=True)
        reader.start()
        time.sleep(0.3)
        assert camera.proc is not None
        started = time.monotonic()
        camera.proc.send_signal(signal.SIGTERM)
        assert camera.proc.wait(1.0) == 0
        assert time.monotonic() - started < 1.0
        reader.join(2.0)
        assert not reader.is_alive()  # the playing client saw its connection end
        idle.sock.settimeout(1.0)
        assert idle.sock.recv(1) == b""
        playing.close()
        idle.close()
        leftovers = [
            pid
            for pid in os.listdir("/proc")
            if pid.isdigit()
            and "hostile_camera.py" in (cmdline := _cmdline(pid))
            and f"--port\0{camera.port}\0" in cmdline
        ]
        assert not leftovers
        with socket.socket() as probe:  # the port is free again
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", camera.port))
    finally:
        camera.stop()


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return ""
