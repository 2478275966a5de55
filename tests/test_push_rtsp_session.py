"""The RTSP RECORD session driven with byte fixtures: the good exchange, authentication, then
truncated and malformed answers from the centre, each of which must end in a PushError that
names it (or be skipped, for what the centre may send between answers)."""

from __future__ import annotations

import re
import struct
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.media.packet import Packet, Track
from gateway.push.error import PushError
from gateway.push.publisher import PushUrl
from gateway.push.rtsp.session import Answered, Recording, RtspSession

SPS_PPS = bytes.fromhex("000000016742c014da0507e840000003004000000ca3c50aa80000000168ce3c80")
VIDEO = Track(0, "video", "h264", Fraction(1, 90000), 320, 240, extradata=SPS_PPS)
AUDIO = Track(1, "audio", "pcm_alaw", Fraction(1, 8000), sample_rate=8000, channels=1)
DIGEST = 'WWW-Authenticate: Digest realm="centre", nonce="abc123", qop="auth"'


def session(
    url: str = "rtsp://centre.test/site/cam", tracks: tuple[Track, ...] = (VIDEO,)
) -> RtspSession:
    return RtspSession(PushUrl.parse(url), tracks, wall=lambda m: 1_700_000_000.0 + m)


def answer(cseq: int | None, status: str = "200 OK", *headers: str, body: bytes = b"") -> bytes:
    lines = [f"RTSP/1.0 {status}"]
    if cseq is not None:
        lines.append(f"CSeq: {cseq}")
    lines += headers
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def requests(data: bytes) -> list[tuple[str, dict[str, str]]]:
    """(request line, headers) of each request in ``data``."""
    out = []
    for head in data.decode().split("\r\n\r\n"):
        if not head.strip() or not re.match(r"^[A-Z]+ ", head):
            continue
        first, *lines = head.split("\r\n")
        out.append((first, dict(line.split(": ", 1) for line in lines)))
    return out


def recording(s: RtspSession, tracks: int = 1) -> None:
    s.start()
    replies = [answer(1), answer(2)]
    replies += [answer(3 + n, "200 OK", "Session: 12345678;timeout=30") for n in range(tracks)]
    replies.append(answer(3 + tracks))
    for data in replies:
        s.receive(data)
        s.data_to_send()
    assert s.recording


def packet(data: bytes, track: int = 0, pts: int = 0) -> Packet:
    return Packet(track, data, pts, pts, 3600, Fraction(1, 90000), True, track == 0, 5.0)


def failure(s: RtspSession, data: bytes) -> PushError:
    with pytest.raises(PushError) as caught:
        s.receive(data)
    assert s.receive(answer(99)) == [], "a failed session takes nothing more"
    return caught.value


def test_the_good_exchange() -> None:
    s = session(tracks=(VIDEO, AUDIO))
    (options,) = requests(s.start())
    assert options[0] == "OPTIONS rtsp://centre.test/site/cam RTSP/1.0"
    assert options[1]["CSeq"] == "1" and options[1]["User-Agent"] == "camera-gateway"
    assert s.waiting_for == "OPTIONS"
    reply = answer(1, "200 OK", "Public: ANNOUNCE, SETUP, RECORD")
    assert s.receive(reply[:10]) == []  # answers may come in pieces
    assert s.receive(reply[10:]) == [Answered("OPTIONS")]
    announce = s.data_to_send()
    assert announce.startswith(b"ANNOUNCE rtsp://centre.test/site/cam RTSP/1.0\r\nCSeq: 2\r\n")
    head, _, sdp = announce.partition(b"\r\n\r\n")
    assert b"Content-Type: application/sdp" in head
    assert f"Content-Length: {len(sdp)}".encode() in head
    assert b"m=video 0 RTP/AVP 96" in sdp and b"m=audio 0 RTP/AVP 8" in sdp

    assert s.receive(answer(2)) == [Answered("ANNOUNCE")]
    ((line, headers),) = requests(s.data_to_send())
    assert line == "SETUP rtsp://centre.test/site/cam/streamid=0 RTSP/1.0"
    assert headers["Transport"] == "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record"
    assert s.receive(answer(3, "200 OK", "Session: 12345678;timeout=30")) == [Answered("SETUP")]
    assert s.keepalive == 15.0
    ((line, headers),) = requests(s.data_to_send())
    assert line.endswith("/streamid=1 RTSP/1.0") and headers["Session"] == "12345678"
    assert headers["Transport"].endswith("interleaved=2-3;mode=record")
    s.receive(answer(4, "200 OK", "Session: 12345678"))
    ((line, headers),) = requests(s.data_to_send())
    assert line.startswith("RECORD ") and headers["Range"] == "npt=0.000-"
    assert s.receive(answer(5, "200 OK", "Session: 12345678")) == [Recording()]
    assert s.recording and s.data_to_send() == b""

    frames = s.send(packet(SPS_PPS + b"\x00\x00\x01\x65" + bytes(3000)), now=100.0)
    channels = []
    pos = 0
    while pos < len(frames):
        dollar, channel, size = struct.unpack_from("!cBH", frames, pos)
        assert dollar == b"$"
        channels.append(channel)
        pos += 4 + size
    assert channels[-1] == 1, "a sender report follows the first picture, on the RTCP channel"
    report = frames[-28:]
    assert (
        report[1] == 200 and struct.unpack("!I", report[8:12])[0] == 1_700_000_005 + 2_208_988_800
    )
    assert 1 not in channels[:-1]
    later = s.send(packet(b"\x00\x00\x01\x41" + b"\x9a" * 10, pts=3600), now=102.0)
    assert later[1] == 0 and len(later) == 4 + 12 + 11, "no report before 5 s"
    assert s.send(packet(b"\x00" * 160, track=7), now=103.0) == b""  # not carried

    assert s.poll(now=110.0) == b""  # the keep-alive clock starts
    assert s.poll(now=124.0) == b""
    ((line, headers),) = requests(s.poll(now=125.5))
    assert line.startswith("OPTIONS ") and headers["Session"] == "12345678"
    assert s.receive(answer(6)) == []  # the keep-alive's answer: nothing to act on

    ((line, headers),) = requests(s.close())
    assert line.startswith("TEARDOWN ") and headers["CSeq"] == "7"


def test_digest_authentication_is_answered_once() -> None:
    s = session("rtsp://res-0042:pa%3Ass@centre.test/site/cam")
    s.start()
    assert (
        s.receive(answer(1, "401 Unauthorized", 'WWW-Authenticate: Basic realm="x"', DIGEST)) == []
    )
    ((line, headers),) = requests(s.data_to_send())
    assert line.startswith("OPTIONS ") and headers["CSeq"] == "2"
    assert headers["Authorization"].startswith('Digest username="res-0042", realm="centre"')
    assert "qop=auth" in headers["Authorization"]
    s.receive(answer(2))
    ((_, headers),) = requests(s.data_to_send())
    assert "nc=00000002" in headers["Authorization"], "every request is authenticated"
    error = failure(s, answer(3, "401 Unauthorized", DIGEST))
    assert error.auth and error.reason == "ANNOUNCE: credentials refused by the centre (401)"


def test_basic_authentication_and_a_loop_of_401() -> None:
    s = session("rtsp://user:secret@centre.test/site/cam")
    s.start()
    s.receive(answer(1, "401 Unauthorized", 'WWW-Authenticate: Basic realm="x"'))
    ((_, headers),) = requests(s.data_to_send())
    assert headers["Authorization"] == "Basic dXNlcjpzZWNyZXQ="
    error = failure(s, answer(2, "401 Unauthorized", 'WWW-Authenticate: Basic realm="x"'))
    assert error.auth and "credentials refused" in error.reason


@pytest.mark.parametrize(
    ("url", "reply", "words"),
    [
        ("rtsp://centre.test/x", answer(1, "401 Unauthorized", DIGEST), "requires credentials"),
        ("rtsp://u:p@centre.test/x", answer(1, "403 Forbidden"), "refused by the centre (403)"),
        ("rtsp://u:p@centre.test/x", answer(1, "401 No", "WWW-Authenticate: Bearer x"), "'bearer'"),
        (
            "rtsp://u:p@centre.test/x",
            answer(1, "401 No", 'WWW-Authenticate: Digest nonce="n", algorithm=SHA-256'),
            "Digest with 'SHA-256'",
        ),
    ],
)
def test_authentication_errors(url: str, reply: bytes, words: str) -> None:
    s = session(url)
    s.start()
    error = failure(s, reply)
    assert error.auth and words in error.reason


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (answer(1, "2x0 OK"), "malformed RTSP status line from the centre: 'RTSP/1.0 2x0 OK'"),
        (b"RTSP/1.0\r\nCSeq: 1\r\n\r\n", "malformed RTSP status line"),
        (b"RTSP/2.0 200 OK\r\nCSeq: 1\r\n\r\n", "malformed RTSP status line"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "not an RTSP answer from the centre: 'HTTP/1.1 400"),
        (answer(None), "the centre answered OPTIONS without a CSeq"),
        (answer(1, "200 OK", "CSeq: one"), "malformed CSeq"),
        (answer(1, "200 OK", "Content-Length: 999999999"), "RTSP body of 999999999 bytes"),
        (answer(1, "200 OK", "Content-Length: -5"), "malformed Content-Length"),
        (answer(1, "200 OK", "Server: caf\xe9".encode("latin-1").decode("latin-1")), ""),
        (b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nServer: caf\xe9\r\n\r\n", ""),
        (b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nno colon here\r\n\r\n", "malformed RTSP header"),
        (b"RTSP/1.0 200 OK\r\nX: " + b"y" * 70_000, "RTSP header longer than 65536 bytes"),
        (
            answer(1, "454 Session Not Found"),
            "OPTIONS refused by the centre: 454 Session Not Found",
        ),
    ],
)
def test_malformed_or_refusing_answers(reply: bytes, words: str) -> None:
    s = session()
    s.start()
    if not words:  # text beyond ASCII is fine, in UTF-8 or Latin-1
        assert s.receive(reply) == [Answered("OPTIONS")]
        return
    assert words in failure(s, reply).reason


def test_what_the_centre_may_send_between_answers_is_skipped() -> None:
    s = session()
    s.start()
    rtcp = b"$\x01\x00\x08" + bytes(8)
    request_from_server = (
        b"GET_PARAMETER rtsp://gw/x RTSP/1.0\r\nCSeq: 9\r\nContent-Length: 2\r\n\r\nhi"
    )
    late = answer(0)  # an answer to nothing we are waiting for
    data = rtcp + request_from_server + late + rtcp + answer(1)
    for n in range(len(data)):  # byte by byte
        events = s.receive(data[n : n + 1])
    assert events == [Answered("OPTIONS")]


def test_what_a_closed_connection_means() -> None:
    s = session()
    s.start()
    assert s.closed().reason == "the centre closed the connection during OPTIONS"
    live = session()
    recording(live)
    assert live.closed().reason == "the centre closed the connection"


def test_no_video_that_rtsp_carries() -> None:
    mjpeg = Track(0, "video", "mjpeg", Fraction(1, 90000), 320, 240)
    s = session(tracks=(mjpeg, AUDIO))
    assert s.skipped == [mjpeg]
    with pytest.raises(PushError, match="no video track that RTSP can carry"):
        s.start()


def test_close_without_a_session_sends_nothing() -> None:
    s = session()
    s.start()
    assert s.close() == b""


def _exchange() -> bytes:
    return b"".join([answer(1), answer(2), answer(3, "200 OK", "Session: 1;timeout=60"), answer(4)])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(0, 200), noise=st.binary(max_size=300), piece=st.integers(1, 64))
def test_any_bytes_end_in_progress_or_a_push_error(cut: int, noise: bytes, piece: int) -> None:
    data = _exchange()[:cut] + noise
    s = session("rtsp://u:p@centre.test/x")
    s.start()
    try:
        for pos in range(0, len(data), piece):
            s.receive(data[pos : pos + piece])
            s.data_to_send()
    except PushError as exc:
        assert exc.reason


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"\r\n",
                b":",
                b" ",
                b"RTSP/1.0 ",
                b"200",
                b"CSeq: 1",
                b"$",
                b"\x00\x05",
                b"Content-Length: 3",
                b"\xff",
            ]
        ),
        max_size=40,
    )
)
def test_structured_garbage(parts: list[bytes]) -> None:
    s = session()
    s.start()
    try:
        s.receive(b"".join(parts))
    except PushError as exc:
        assert exc.reason
