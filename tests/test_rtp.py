"""RTP packetisation, SDP and RTSP authentication, checked against the RFCs' own rules."""

from __future__ import annotations

import base64
import struct
from fractions import Fraction

from gateway.media.packet import Track
from gateway.push.rtsp.auth import Credentials
from gateway.push.rtsp.rtp import MAX_PAYLOAD, RtpTrack
from gateway.push.rtsp.sdp import describe

SPS = bytes.fromhex("6742c01eda0280bfe5c05a83030352800000030080000019478b1750")
PPS = bytes.fromhex("68ce3c80")
EXTRADATA = b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x00\x01" + PPS


def _header(packet: bytes) -> tuple[int, int, int, int, int]:
    first, second, sequence, timestamp, ssrc = struct.unpack("!BBHII", packet[:12])
    return first >> 6, second >> 7, sequence, timestamp, ssrc


def _reassemble_fu_a(payloads: list[bytes]) -> bytes:
    indicator, header = payloads[0][0], payloads[0][1]
    nal = bytes(((indicator & 0xE0) | (header & 0x1F),))
    return nal + b"".join(p[2:] for p in payloads)


def test_h264_large_nal_is_split_into_fu_a_that_reassemble_exactly() -> None:
    idr = bytes([0x65]) + bytes(range(256)) * 20  # 5121-byte slice
    access_unit = b"\x00\x00\x00\x01\x09\xf0" + b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x01" + idr
    track = RtpTrack("h264", 96, 90000)
    first_sequence = track.sequence

    packets = track.packetize(access_unit, 123456)

    headers = [_header(p) for p in packets]
    payloads = [p[12:] for p in packets]
    assert all(version == 2 for version, *_ in headers)
    assert [marker for _, marker, *_ in headers] == [0] * (len(packets) - 1) + [1]
    assert [seq for _, _, seq, *_ in headers] == [
        (first_sequence + i) & 0xFFFF for i in range(len(packets))
    ]
    assert {ts for *_, ts, _ in headers} == {123456}
    assert all(len(p) <= MAX_PAYLOAD for p in payloads)
    assert payloads[0] == SPS, "the access unit delimiter is not sent; the SPS goes whole"
    fragments = payloads[1:]
    assert fragments[0][1] & 0x80 and fragments[-1][1] & 0x40  # start and end bits
    assert all(f[0] & 0x1F == 28 for f in fragments)
    assert _reassemble_fu_a(fragments) == idr


def test_h265_large_nal_is_split_into_fus_that_reassemble_exactly() -> None:
    slice_nal = bytes([0x26, 0x01]) + bytes(range(256)) * 12  # IDR_W_RADL
    track = RtpTrack("hevc", 96, 90000)

    payloads = [p[12:] for p in track.packetize(b"\x00\x00\x01" + slice_nal, 1)]

    assert len(payloads) > 1
    assert all((p[0] >> 1) & 0x3F == 49 for p in payloads)
    assert payloads[0][2] & 0x80 and payloads[-1][2] & 0x40
    rebuilt = bytes((((payloads[0][0] & 0x81) | ((payloads[0][2] & 0x3F) << 1)), payloads[0][1]))
    rebuilt += b"".join(p[3:] for p in payloads)
    assert rebuilt == slice_nal


def test_aac_frame_gets_an_au_header_with_its_size() -> None:
    frame = bytes(300)
    (packet,) = RtpTrack("aac", 97, 48000).packetize(frame, 7)
    headers_length, au_header = struct.unpack("!HH", packet[12:16])
    assert headers_length == 16 and au_header >> 3 == 300 and au_header & 7 == 0
    assert packet[16:] == frame


def test_sender_report_maps_rtp_time_to_wall_time() -> None:
    track = RtpTrack("h264", 96, 90000)
    track.packetize(b"\x00\x00\x01\x65abc", 1000)
    report = track.sender_report(1_700_000_000.5, 1000)
    _, kind, length, ssrc, ntp_seconds, ntp_fraction, rtp_ts, packets, octets = struct.unpack(
        "!BBHIIIIII", report
    )
    assert (kind, length, ssrc, rtp_ts, packets, octets) == (200, 6, track.ssrc, 1000, 1, 4)
    assert ntp_seconds == 1_700_000_000 + 2_208_988_800
    assert ntp_fraction == 1 << 31


def test_sdp_carries_the_parameter_sets_and_audio_config() -> None:
    video = Track(0, "video", "h264", Fraction(1, 90000), 640, 360, extradata=EXTRADATA)
    audio = Track(
        1,
        "audio",
        "aac",
        Fraction(1, 16000),
        sample_rate=16000,
        channels=1,
        extradata=bytes.fromhex("1408"),
    )
    sdp = describe([(video, 96), (audio, 97)], host="127.0.0.1")
    assert "m=video 0 RTP/AVP 96" in sdp and "a=rtpmap:96 H264/90000" in sdp
    sprops = f"{base64.b64encode(SPS).decode()},{base64.b64encode(PPS).decode()}"
    assert f"sprop-parameter-sets={sprops}" in sdp
    assert "profile-level-id=42C01E" in sdp
    assert "a=rtpmap:97 MPEG4-GENERIC/16000/1" in sdp and "config=1408" in sdp
    assert "a=control:streamid=0" in sdp and "a=control:streamid=1" in sdp
    assert sdp.endswith("\r\n")


def test_digest_response_matches_rfc_2617_example() -> None:
    challenge = (
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    auth = Credentials.from_challenges(
        [challenge], "Mufasa", "Circle Of Life", random=lambda n: bytes.fromhex("0a4f113b")
    )
    header = auth.header("GET", "/dir/index.html")
    assert 'response="6629fae49393a05397450978507c4ef1"' in header
    assert "nc=00000001" in header and 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header


def test_basic_credentials() -> None:
    auth = Credentials.from_challenges(['Basic realm="csu"'], "res-0042", "pa:ss")
    token = base64.b64encode(b"res-0042:pa:ss").decode()
    assert auth.header("ANNOUNCE", "rtsp://x/y") == f"Basic {token}"


def test_interleaved_framing_carries_exactly_the_rtp_packets() -> None:
    idr = bytes([0x65]) + bytes(range(256)) * 20
    access_unit = b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x01" + idr
    reference, framed = RtpTrack("h264", 96, 90000), RtpTrack("h264", 96, 90000)
    framed.ssrc, framed.sequence = reference.ssrc, reference.sequence
    packets = reference.packetize(access_unit, 42)
    stream = bytes(framed.interleaved(access_unit, 42, channel=2))
    unframed = []
    pos = 0
    while pos < len(stream):
        dollar, channel, size = struct.unpack_from("!cBH", stream, pos)
        assert (dollar, channel) == (b"$", 2)
        unframed.append(stream[pos + 4 : pos + 4 + size])
        pos += 4 + size
    assert unframed == packets
    assert (framed.packets, framed.octets) == (reference.packets, reference.octets)
