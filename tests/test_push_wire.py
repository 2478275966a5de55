"""The push wire formats, each alone: RTMP chunks (both ways, bounded), AMF0 (bounded), the
RTMP handshake, RTSP requests and the answer parser, and the transport's one drain and one
wording of socket errors (over a socket pair)."""

from __future__ import annotations

import errno
import socket
import ssl
import struct
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.push.error import PushError
from gateway.push.rtmp import amf0
from gateway.push.rtmp.chunk import MAX_STREAMS, ChunkReader, ChunkWriter
from gateway.push.rtmp.handshake import SIZE, Handshake
from gateway.push.rtsp.messages import StreamParser, request
from gateway.push.transport import Uplink, failure

# -- RTMP chunks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 128, 4096])
def test_chunks_written_are_read_back(chunk_size: int) -> None:
    writer, reader = ChunkWriter(chunk_size), ChunkReader()
    reader.chunk_size = chunk_size
    sent = [
        (6, 9, 0, b"\x17" * 5000, 1),
        (6, 9, 40, b"\x27" * 300, 1),  # type 1: delta on the same chunk stream
        (4, 8, 20, b"\xaf\x01" + b"a" * 10, 1),
        (6, 9, 0x1000000, b"late" * 100, 1),  # extended timestamp
        (6, 9, 0x1000028, b"later" * 100, 1),
        (3, 20, 0, amf0.encode("deleteStream", 5.0, None, 1.0), 0),
    ]
    data = b"".join(
        writer.message(c, k, t, [p[:7], memoryview(p)[7:]], s) for c, k, t, p, s in sent
    )
    messages = [m for n in range(0, len(data), 333) for m in reader.feed(data[n : n + 333])]
    assert [(m.kind, m.timestamp, m.payload, m.stream) for m in messages] == [
        (k, t, p, s) for _, k, t, p, s in sent
    ]


def test_chunk_streams_beyond_the_bound() -> None:
    header = bytes(3) + (4).to_bytes(3, "big") + b"\x14" + bytes(4)
    data = b"".join(bytes((0, n)) + header + b"part" for n in range(MAX_STREAMS + 1))
    reader = ChunkReader()
    with pytest.raises(PushError, match=f"more than {MAX_STREAMS} RTMP chunk streams"):
        reader.feed(data)


def test_abort_drops_a_partial_message_and_three_byte_ids_work() -> None:
    writer, reader = ChunkWriter(128), ChunkReader()
    first = writer.message(3, 20, 0, [b"x" * 200], 0)
    abort = writer.message(2, 2, 0, [struct.pack(">I", 3)], 0)
    assert reader.feed(first[:140] + abort)[0].kind == 2
    again = ChunkWriter(128).message(3, 20, 0, [b"y" * 10], 0)
    assert reader.feed(again)[0].payload == b"y" * 10
    wide = b"\x01" + (400 - 64).to_bytes(2, "little") + bytes(3) + b"\x00\x00\x02\x14" + bytes(4)
    (message,) = reader.feed(wide + b"ok")
    assert message.payload == b"ok"


def test_truncated_set_chunk_size() -> None:
    with pytest.raises(PushError, match="truncated RTMP Set Chunk Size"):
        ChunkReader().feed(ChunkWriter(128).message(2, 1, 0, [b"\x00\x01"], 0))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_chunk_reader_on_garbage(data: bytes) -> None:
    try:
        ChunkReader().feed(data)
    except PushError as exc:
        assert exc.reason


# -- AMF0 ----------------------------------------------------------------------------------------


def test_amf0_round_trip_and_long_strings() -> None:
    values: list[amf0.AmfValue] = [
        "connect",
        1.0,
        {"app": "live", "flag": True, "nested": {"n": -2.5}},
        None,
        amf0.EcmaArray(width=320.0),
        ["a", 2.0],
        "x" * 70_000,
    ]
    assert amf0.decode(amf0.encode(*values)) == values
    assert amf0.decode(b"\x0b" + struct.pack(">d", 5.0) + b"\x00\x00") == [5.0]  # a date
    assert amf0.decode(b"\x06") == [None]  # undefined


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_amf0_garbage_is_an_amf_error(data: bytes) -> None:
    try:
        amf0.decode(data)
    except amf0.AmfError as exc:
        assert str(exc)


# -- handshake -----------------------------------------------------------------------------------


def test_handshake() -> None:
    hello = Handshake(lambda n: b"r" * n)
    c0c1 = hello.start()
    assert c0c1 == b"\x03" + bytes(8) + b"r" * (SIZE - 8)
    s1 = b"s" * SIZE
    assert hello.receive(b"\x03" + s1) is None
    assert hello.receive(c0c1[1:] + b"extra") == (s1, b"extra")
    assert hello.done
    with pytest.raises(PushError, match=r"handshake version 6"):
        Handshake().receive(b"\x06")


# -- RTSP messages -------------------------------------------------------------------------------


def test_request_and_parser() -> None:
    data = request("ANNOUNCE", "rtsp://h/p", 2, {"Session": "s"}, b"v=0\r\n")
    assert data == (
        b"ANNOUNCE rtsp://h/p RTSP/1.0\r\nCSeq: 2\r\nUser-Agent: camera-gateway\r\n"
        b"Session: s\r\nContent-Length: 5\r\n\r\nv=0\r\n"
    )
    parser = StreamParser()
    reply = b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: 4\r\nWWW-Authenticate: a\r\n"
    reply += b"WWW-Authenticate: b\r\n\r\nbody"
    assert parser.feed(reply[:-2]) == []
    (response,) = parser.feed(reply[-2:])
    assert (response.status, response.reason, response.cseq, response.body) == (
        200,
        "OK",
        2,
        b"body",
    )
    assert response.challenges == ["a", "b"]


# -- transport -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "stage", "what", "reason"),
    [
        (TimeoutError(), "connect", "h:1", "no answer from h:1 within 2 s"),
        (
            ConnectionRefusedError(errno.ECONNREFUSED, "x"),
            "connect",
            "h:1",
            "connection refused by h:1",
        ),
        (socket.gaierror(-2, "x"), "connect", "h:1", "cannot resolve h"),
        (OSError(errno.EHOSTUNREACH, "x"), "connect", "h:1", "h unreachable"),
        (TimeoutError(), "send", "", "uplink stalled (nothing sent for 2 s)"),
        (
            BrokenPipeError(errno.EPIPE, "Broken pipe"),
            "send",
            "",
            "connection to the centre lost (Broken pipe)",
        ),
        (TimeoutError(), "receive", "publish", "no answer to publish within 2 s"),
        (
            ssl.SSLError(1, "bad record"),
            "receive",
            "connect",
            "connection to the centre lost during connect (TLS: bad record)",
        ),
    ],
)
def test_one_wording_of_socket_errors(exc: OSError, stage: str, what: str, reason: str) -> None:
    assert failure(exc, stage, timeout=2.0, what=what).reason == reason  # type: ignore[arg-type]


@pytest.fixture
def pair() -> Iterator[tuple[Uplink, socket.socket]]:
    ours, theirs = socket.socketpair()
    uplink = Uplink(ours, timeout=0.3)
    yield uplink, theirs
    uplink.close()
    theirs.close()


def test_drain_takes_what_came_then_sees_the_close(pair: tuple[Uplink, socket.socket]) -> None:
    uplink, theirs = pair
    assert uplink.drain() == (b"", False, None)
    theirs.sendall(b"abc")
    theirs.sendall(b"def")
    time.sleep(0.05)
    assert uplink.drain() == (b"abcdef", False, None)
    theirs.sendall(b"last")
    theirs.shutdown(socket.SHUT_WR)
    time.sleep(0.05)
    assert uplink.drain() == (b"last", True, None)
    assert uplink.broken


def test_receive_waits_until_the_deadline(pair: tuple[Uplink, socket.socket]) -> None:
    uplink, theirs = pair
    began = time.monotonic()
    with pytest.raises(PushError, match=r"no answer to connect within 0\.3 s"):
        uplink.receive(time.monotonic() + 0.2, "connect")
    assert time.monotonic() - began < 0.5
    theirs.sendall(b"x")
    assert uplink.receive(time.monotonic() + 0.2, "connect") == b"x"
    uplink.write(b"hello")
    assert theirs.recv(10) == b"hello" and uplink.bytes_sent == 5


def test_a_reset_is_a_lost_connection(pair: tuple[Uplink, socket.socket]) -> None:
    uplink, theirs = pair
    theirs.close()
    with pytest.raises(PushError, match=r"connection to the centre lost \("):
        for _ in range(100):
            uplink.write(b"x" * 65536)
    assert uplink.broken
    uplink.close(b"goodbye", within=0.2, linger=True)  # does not raise, does not wait
