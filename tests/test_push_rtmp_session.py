"""The RTMP publish session driven with byte fixtures: the good exchange, then truncated and
malformed replies from the centre, each of which must end in a PushError that names it."""

from __future__ import annotations

import math
import struct
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.media.packet import Packet, Track
from gateway.push.error import PushError
from gateway.push.publisher import PushUrl
from gateway.push.rtmp import amf0
from gateway.push.rtmp.amf0 import AmfValue
from gateway.push.rtmp.chunk import ChunkReader, ChunkWriter, Message
from gateway.push.rtmp.handshake import SIZE
from gateway.push.rtmp.session import Connected, Published, RtmpSession, StreamCreated

SPS_PPS = bytes.fromhex("000000016742c014da0507e840000003004000000ca3c50aa80000000168ce3c80")
S1 = bytes(range(256)) * 6
SERVER_HELLO = b"\x03" + S1 + bytes(SIZE)
VIDEO = Track(0, "video", "h264", Fraction(1, 90000), 320, 240, extradata=SPS_PPS)


class Centre:
    """Builds what an RTMP server sends (chunk size 128) and reads what the session sent."""

    def __init__(self) -> None:
        self.writer = ChunkWriter(128)
        self.reader = ChunkReader()

    def message(self, kind: int, payload: bytes, *, csid: int = 3, stream: int = 0) -> bytes:
        return self.writer.message(csid, kind, 0, [payload], stream)

    def command(self, *values: AmfValue, stream: int = 0) -> bytes:
        return self.message(20, amf0.encode(*values), stream=stream)

    def status(self, level: str, code: str, description: str = "") -> bytes:
        info: dict[str, AmfValue] = {"level": level, "code": code, "description": description}
        return self.command("onStatus", 0.0, None, info, stream=1)

    def read(self, data: bytes) -> list[Message]:
        return self.reader.feed(data)

    def commands(self, data: bytes) -> list[list[AmfValue]]:
        return [amf0.decode(m.payload) for m in self.read(data) if m.kind == 20]


def session(path: str = "/live/cam") -> RtmpSession:
    url = PushUrl.parse(f"rtmp://centre.test{path}")
    return RtmpSession(url, (VIDEO,), random=bytes)


def connected(centre: Centre, path: str = "/live/cam") -> RtmpSession:
    """A session past the handshake, its connect sent."""
    s = session(path)
    s.start()
    assert s.receive(SERVER_HELLO) == []
    out = s.data_to_send()
    assert out[:SIZE] == S1  # C2 echoes S1
    centre.read(out[SIZE:])
    return s


def publishing(centre: Centre) -> RtmpSession:
    s = connected(centre)
    s.receive(centre.command("_result", 1.0, {"fmsVer": "FMS/3"}, {"code": "ok"}))
    s.receive(centre.command("_result", 4.0, None, 1.0))
    s.receive(centre.status("status", "NetStream.Publish.Start"))
    centre.read(s.data_to_send())
    assert s.publishing
    return s


def keyframe(dts: int = 0) -> Packet:
    data = SPS_PPS + b"\x00\x00\x00\x01\x65" + bytes(5000)
    return Packet(0, data, dts, dts, 3600, Fraction(1, 90000), True, True, 0.0)


def refusal(s: RtmpSession, data: bytes) -> PushError:
    with pytest.raises(PushError) as caught:
        s.receive(data)
    assert s.failed
    assert s.receive(b"more") == []  # a failed session takes nothing more
    return caught.value


def test_the_good_exchange() -> None:
    centre = Centre()
    s = session()
    hello = s.start()
    assert hello[0] == 3 and len(hello) == 1 + SIZE and s.waiting_for == "the RTMP handshake"
    assert s.receive(SERVER_HELLO[:100]) == []  # the handshake may come in pieces
    assert s.data_to_send() == b""
    assert s.receive(SERVER_HELLO[100:]) == []
    out = s.data_to_send()
    messages = centre.read(out[SIZE:])
    assert [m.kind for m in messages] == [1, 20]
    assert struct.unpack(">I", messages[0].payload)[0] == 4096
    name, transaction, info = amf0.decode(messages[1].payload)
    assert (name, transaction) == ("connect", 1.0)
    assert isinstance(info, dict)
    assert info["app"] == "live" and info["tcUrl"] == "rtmp://centre.test:1935/live"
    assert s.waiting_for == "connect"

    ok = centre.command("_result", 1.0, {"fmsVer": "FMS/3"}, {"code": "Connect.Success"})
    assert s.receive(ok) == [Connected()]
    commands = centre.commands(s.data_to_send())
    assert [c[0] for c in commands] == ["releaseStream", "FCPublish", "createStream"]
    assert commands[0][3] == "cam"
    assert s.receive(centre.command("_result", 2.0, None)) == []  # releaseStream: nothing
    assert s.receive(centre.command("_result", 4.0, None, 1.0)) == [StreamCreated(1)]
    (publish,) = centre.commands(s.data_to_send())
    assert publish[0] == "publish" and publish[3:] == ["cam", "live"]
    assert s.waiting_for == "publish"

    assert s.receive(centre.status("status", "NetStream.Publish.Start")) == [Published()]
    headers = centre.read(s.data_to_send())
    assert [m.kind for m in headers] == [18, 9]  # onMetaData, AVC sequence header
    assert all(m.stream == 1 for m in headers)
    assert amf0.decode(headers[0].payload)[:2] == ["@setDataFrame", "onMetaData"]

    (frame,) = centre.read(s.send(keyframe()))
    assert frame.kind == 9 and frame.payload[:2] == b"\x17\x01"
    (later,) = centre.read(s.send(keyframe(3600)))
    assert later.timestamp == 40

    goodbye = centre.commands(s.close())
    assert [c[0] for c in goodbye] == ["FCUnpublish", "deleteStream"]
    assert goodbye[1][3] == 1.0


def test_pings_and_acknowledgements() -> None:
    centre = Centre()
    s = publishing(centre)
    s.receive(centre.message(5, struct.pack(">I", 1000), csid=2))
    s.receive(centre.message(4, struct.pack(">HI", 6, 77), csid=2))
    replies = centre.read(s.data_to_send())
    assert (4, struct.pack(">HI", 7, 77)) in [(m.kind, m.payload) for m in replies]
    acks = [struct.unpack(">I", m.payload)[0] for m in replies if m.kind == 3]
    assert acks and acks[-1] > 1000


def test_bad_handshake_version() -> None:
    s = session()
    s.start()
    error = refusal(s, b"HTTP/1.1 400 Bad Request\r\n")
    assert error.reason == "not an RTMP server (handshake version 72)"


@pytest.mark.parametrize(
    ("size", "words"),
    [(0, "chunk size of 0"), (0x7FFFFFFF, "chunk size of 2147483647")],
)
def test_chunk_size_zero_or_huge(size: int, words: str) -> None:
    centre = Centre()
    s = connected(centre)
    error = refusal(s, centre.message(1, struct.pack(">I", size), csid=2))
    assert words in error.reason


def test_a_huge_message_is_refused_before_it_is_buffered() -> None:
    s = connected(Centre())
    header = b"\x03" + bytes(3) + (0xFFFFFF).to_bytes(3, "big") + b"\x14" + bytes(4)
    error = refusal(s, header)
    assert "RTMP message of 16777215 bytes" in error.reason


def test_a_chunk_that_continues_nothing() -> None:
    s = connected(Centre())
    error = refusal(s, b"\xc7" + bytes(10))
    assert error.reason == "RTMP chunk of type 3 starts chunk stream 7"


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"\x02\x00\x07_res", "truncated AMF0 string"),
        (b"\x42garbage", "unknown AMF0 marker 0x42"),
        (amf0.encode("_result") + b"\x00\x3f", "truncated AMF0 number"),
        (b"\x02\x00\x02\xff\xfe", "AMF0 string not UTF-8"),
        (b"\x0a" * 40, "AMF0 array of"),
        (b"\x03\x00\x01a" * 40, "nested more than 32 deep"),
        (amf0.encode(1.0, "x"), "no name"),
        (b"", "no name"),
    ],
)
def test_malformed_commands(payload: bytes, words: str) -> None:
    centre = Centre()
    s = connected(centre)
    error = refusal(s, centre.message(20, payload))
    assert error.reason.startswith("malformed command from the centre (")
    assert words in error.reason


def test_connect_refused_for_credentials() -> None:
    centre = Centre()
    s = connected(centre)
    info: dict[str, AmfValue] = {"level": "error", "code": "Rejected", "description": "need auth"}
    error = refusal(s, centre.command("_error", 1.0, None, info))
    assert (
        error.auth and error.reason == "the centre refused application 'live': Rejected need auth"
    )


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (("_error", 4.0, None, {"code": "NetStream.Create.Failed"}), "refused to create a stream"),
        (("_result", 4.0, None), "refused to create a stream"),
        (("_result", 4.0, None, "one"), "refused to create a stream"),
        (("_result", 4.0, None, math.nan), "invalid stream id (nan)"),
        (("_result", 4.0, None, -1.0), "invalid stream id (-1.0)"),
        (("_result", 4.0, None, 1.5), "invalid stream id (1.5)"),
    ],
)
def test_create_stream_refused_or_nonsense(reply: tuple[AmfValue, ...], words: str) -> None:
    centre = Centre()
    s = connected(centre)
    s.receive(centre.command("_result", 1.0, None, {"code": "ok"}))
    assert words in refusal(s, centre.command(*reply)).reason


@pytest.mark.parametrize(
    ("level", "code", "auth"),
    [
        ("error", "NetStream.Publish.BadName", False),
        ("status", "NetStream.Publish.Denied", False),
        ("error", "NetStream.Publish.Unauthorized", True),
    ],
)
def test_publish_refused_by_status(level: str, code: str, auth: bool) -> None:
    centre = Centre()
    s = connected(centre, "/live/cam?key=s3cret-key")
    s.receive(centre.command("_result", 1.0, None, {"code": "ok"}))
    s.receive(centre.command("_result", 4.0, None, 1.0))
    error = refusal(s, centre.status(level, code, "cam?key=s3cret-key is not allowed"))
    assert error.reason.startswith(f"the centre refused the stream: {code}")
    assert "s3cret" not in error.reason
    assert error.auth == auth


def test_publish_answered_with_error() -> None:
    centre = Centre()
    s = connected(centre)
    s.receive(centre.command("_result", 1.0, None, {"code": "ok"}))
    s.receive(centre.command("_result", 4.0, None, 1.0))
    error = refusal(s, centre.command("_error", 5.0, None, {"code": "Publish.Failed"}))
    assert error.reason == "the centre refused the stream: Publish.Failed"


def test_stopped_while_publishing() -> None:
    centre = Centre()
    s = publishing(centre)
    error = refusal(s, centre.status("error", "NetStream.Publish.Idle", "idle"))
    assert error.reason == "the centre stopped the stream: NetStream.Publish.Idle idle"
    assert s.close() == b"", "no goodbye to a centre that stopped us"
    closing = publishing(Centre())
    error = refusal(closing, Centre().command("close", 0.0))
    assert "NetConnection.Connect.Closed" in error.reason


@pytest.mark.parametrize(
    ("steps", "reason"),
    [
        (0, "the centre closed the connection during the RTMP handshake"),
        (1, "the centre closed the connection after connect (application 'live' refused?)"),
        (2, "the centre closed the connection during createStream"),
        (3, "the centre closed the connection during publish"),
        (4, "the centre closed the connection"),
    ],
)
def test_what_a_closed_connection_means(steps: int, reason: str) -> None:
    centre = Centre()
    s = session()
    s.start()
    replies = [
        SERVER_HELLO,
        centre.command("_result", 1.0, None, {"code": "ok"}),
        centre.command("_result", 4.0, None, 1.0),
        centre.status("status", "NetStream.Publish.Start"),
    ]
    for data in replies[:steps]:
        s.receive(data)
    assert s.closed().reason == reason


def test_not_carried_or_no_stream_name() -> None:
    hevc = Track(0, "video", "hevc", Fraction(1, 90000), 320, 240)
    url = PushUrl.parse("rtmp://centre.test/live/cam")
    with pytest.raises(PushError, match="hevc cannot be sent over RTMP"):
        RtmpSession(url, (hevc,)).start()
    with pytest.raises(PushError, match="no stream name"):
        session("/live").start()
    with pytest.raises(PushError, match="not publishing"):
        session().send(keyframe())


def _exchange() -> bytes:
    centre = Centre()
    return b"".join(
        [
            SERVER_HELLO,
            centre.message(5, struct.pack(">I", 2_500_000), csid=2),
            centre.command("_result", 1.0, None, {"code": "ok", "description": "x" * 300}),
            centre.command("_result", 4.0, None, 1.0),
            centre.status("status", "NetStream.Publish.Start"),
        ]
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(0, 4000), noise=st.binary(max_size=300), piece=st.integers(1, 700))
def test_any_bytes_end_in_progress_or_a_push_error(cut: int, noise: bytes, piece: int) -> None:
    """A prefix of the good exchange followed by garbage, in pieces of any size: the session
    either goes on or raises PushError, never anything else."""
    data = _exchange()[:cut] + noise
    s = session()
    s.start()
    try:
        for pos in range(0, len(data), piece):
            s.receive(data[pos : pos + piece])
            s.data_to_send()
    except PushError as exc:
        assert exc.reason


def test_the_whole_exchange_in_one_read() -> None:
    s = session()
    s.start()
    events = s.receive(_exchange())
    assert events == [Connected(), StreamCreated(1), Published()]
