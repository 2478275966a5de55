"""What reading the bitstream costs on the per-packet path: packets per second through the
normaliser and the access-unit joiner (what the recorder's packets go through), and through
the forwarder's NAL unit scanning (RTP packetisation, FLV framing, parameter sets put in front
of keyframes), the working tree's against a git commit's, side by side in the same run.

    .venv/bin/python bench/access_units.py [--baseline 6174ab7] [--rounds 9] [--passes 20]

The baseline's ``gateway/media/normalize.py``, ``gateway/forward/rtp.py``, ``flv.py`` and
``gateway/media/params.py`` are read with ``git show`` and imported under their own names next
to the working tree's (they share ``gateway.media.packet``); the default baseline is the last
version that took a repeated timestamp for the same picture. The packets are real:
x264 and x265 streams (720p25, 1 s GOP, made once by ffmpeg under bench/.cache, Annex B and cut
into pictures by FFmpeg's parser, as the RTSP demuxer gives them), stamped and cut as cameras
do in each case below, with the number of samples each version makes of them (for the
forwarder: the bytes it sends, which must be the same). Rounds alternate between the two
versions (each round: ``--passes`` new sessions over the clip); each case reports the median
of the rounds and the time added per packet.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import av

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, ROOT

sys.path.insert(0, str(ROOT))
from gateway.media import normalize, params
from gateway.media.normalize import RawPacket
from gateway.media.packet import Track
from gateway.push.rtmp import flv
from gateway.push.rtsp import rtp

BASELINE = "6174ab7"
"""The commit before the bitstream rule: the same timestamp was the same picture."""
FRAME = 3600
ENCODERS = {
    "h264": ["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-b:v", "1.5M"],
    "hevc": ["-c:v", "libx265", "-preset", "ultrafast", "-b:v", "1.5M"],
}


def encoder_params(codec: str, sliced: bool) -> list[str]:
    """One slice per picture (one thread), or four (as some cameras send)."""
    if codec == "h264":
        return ["-threads", "1", *(["-x264-params", "slices=4"] if sliced else [])]
    return ["-threads", "1", "-x265-params", "log-level=error" + (":slices=4" if sliced else "")]


def clip(codec: str, sliced: bool, seconds: int) -> Path:
    """An Annex B elementary stream, made once and cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    name = f"au-{codec}{'-sliced' if sliced else ''}-720p-{seconds}s.{codec}"
    path = CACHE / name
    if not path.exists():
        partial = path.with_name("part-" + name)
        subprocess.run(
            [
                *("ffmpeg", "-v", "error", "-y", "-f", "lavfi"),
                *("-i", "testsrc2=size=1280x720:rate=25", "-t", str(seconds)),
                *ENCODERS[codec],
                *encoder_params(codec, sliced),
                *("-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-bf", "0"),
                *("-pix_fmt", "yuv420p", "-f", codec, str(partial)),
            ],
            check=True,
        )
        partial.rename(path)
    return path


def pictures(path: Path, codec: str) -> list[tuple[bytes, bool]]:
    """(Annex B access unit, keyframe) of each picture, cut by FFmpeg's parser."""
    with av.open(str(path), format=codec) as container:
        return [(bytes(p), p.is_keyframe) for p in container.demux(video=0) if p.size]


def nal_units(packet: bytes) -> list[bytes]:
    """Cut before each start code (start codes kept: joined, they are the packet)."""
    cuts = []
    at = packet.find(b"\x00\x00\x01")
    while at >= 0:
        cuts.append(at - 1 if at and packet[at - 1] == 0 else at)
        at = packet.find(b"\x00\x00\x01", at + 3)
    return [packet[a:b] for a, b in zip(cuts, [*cuts[1:], len(packet)], strict=True)]


def is_slice(unit: bytes, codec: str) -> bool:
    header = unit[unit.find(b"\x00\x00\x01") + 3]
    return header & 0x1F in (1, 5) if codec == "h264" else (header >> 1) & 0x3F < 32


def raw(data: bytes, stamp: int, key: bool) -> RawPacket:
    return RawPacket(
        track=0, data=data, pts=stamp, dts=stamp, duration=FRAME, keyframe=key, received=0.0
    )


def cases(seconds: int) -> dict[str, tuple[str, list[RawPacket]]]:
    """Case name: (codec, packets)."""
    out: dict[str, tuple[str, list[RawPacket]]] = {}
    for codec in ("h264", "hevc"):
        whole = pictures(clip(codec, False, seconds), codec)
        sliced = pictures(clip(codec, True, seconds), codec)
        out[f"{codec}: a timestamp per picture (the usual camera)"] = (
            codec,
            [raw(data, i * FRAME, key) for i, (data, key) in enumerate(whole)],
        )
        split: list[RawPacket] = []
        for i, (data, key) in enumerate(whole):
            units = nal_units(data)
            if key:  # parameter sets and SEI in a packet before the slice, stamped alike
                first = next(n for n, unit in enumerate(units) if is_slice(unit, codec))
                split += [raw(b"".join(units[:first]), i * FRAME, key)]
                split += [raw(b"".join(units[first:]), i * FRAME, False)]
            else:
                split.append(raw(data, i * FRAME, key))
        out[f"{codec}: keyframes' parameter sets apart"] = (codec, split)
        out[f"{codec}: one packet per NAL unit, 4 slices per picture"] = (
            codec,
            [
                raw(unit, i * FRAME, key and part == 0)
                for i, (data, key) in enumerate(sliced)
                for part, unit in enumerate(nal_units(data))
            ],
        )
        out[f"{codec}: 7 pictures per timestamp (worst case)"] = (
            codec,
            [raw(data, i // 7 * 7 * FRAME, key) for i, (data, key) in enumerate(whole)],
        )
    return out


def baseline_module(ref: str, source_path: str = "gateway/media/normalize.py") -> ModuleType:
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{ref}:{source_path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    name = Path(source_path).stem + "_baseline"
    path = Path(tempfile.mkdtemp(prefix="cgw-au-")) / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def one_pass(module: ModuleType, track: Track, packets: list[RawPacket]) -> tuple[float, int]:
    """Seconds to push every packet through a new normaliser and joiner; samples out."""
    normalizer = module.Normalizer((track,), camera_id="bench")
    joiner = module.AccessUnitJoiner()
    push, join = normalizer.push, joiner.push
    samples = 0
    started = time.perf_counter()
    for packet in packets:
        samples += len(join(push(packet)))
    samples += len(joiner.flush())
    return time.perf_counter() - started, samples


def one_round(
    module: ModuleType, track: Track, packets: list[RawPacket], passes: int
) -> tuple[float, int]:
    """Seconds per packet over ``passes`` passes (each a new session); samples of one pass."""
    total = 0.0
    for _ in range(passes):
        seconds, samples = one_pass(module, track, packets)
        total += seconds
    return total / (passes * len(packets)), samples


Sender = Callable[[bytes, bool], int]
"""Sends one packet (data, keyframe): the bytes it would write."""


def forward_cases(seconds: int) -> dict[str, tuple[str, list[tuple[bytes, bool]]]]:
    """Case name: (what runs, pictures). Keyframes lose their in-band parameter sets for the
    case that puts them back (a camera that sends them in the SDP only)."""
    out: dict[str, tuple[str, list[tuple[bytes, bool]]]] = {}
    for codec in ("h264", "hevc"):
        whole = pictures(clip(codec, False, seconds), codec)
        out[f"{codec}: RTP packets of each picture"] = (f"rtp-{codec}", whole)
        bare = [
            (b"".join(u for u in nal_units(data) if not is_parameter_set(u, codec)), key)
            for data, key in whole
            if key
        ]
        out[f"{codec}: parameter sets before keyframes"] = (f"params-{codec}", bare)
    out["h264: FLV frame of each picture"] = ("flv", pictures(clip("h264", False, seconds), "h264"))
    return out


def is_parameter_set(unit: bytes, codec: str) -> bool:
    header = unit[unit.find(b"\x00\x00\x01") + 3]
    return header & 0x1F in (7, 8) if codec == "h264" else 32 <= (header >> 1) & 0x3F <= 34


def sender(kind: str, modules: dict[str, ModuleType]) -> Sender:
    """A new session of what ``kind`` names, from these versions of the modules."""
    if kind.startswith("rtp-"):
        track = modules["rtp"].RtpTrack(kind[4:], 96, 90_000)
        return lambda data, key: len(track.interleaved(data, 0, 0))
    if kind.startswith("params-"):
        codec = kind[7:]
        extradata = b"\x00\x00\x00\x01\x67\x64\x00\x1f" + b"\x00\x00\x00\x01\x68\xee"
        if codec == "hevc":
            extradata = b"\x00\x00\x00\x01\x40\x01\x0c\x01" + b"\x00\x00\x00\x01\x42\x01\x01"
        add = modules["params"].with_parameter_sets
        return lambda data, key: len(add(data, extradata, codec))
    frame = modules["flv"].avc_frame
    return lambda data, key: sum(len(p) for p in frame(data, key, 0).parts)


def forward_round(
    kind: str, modules: dict[str, ModuleType], units: list[tuple[bytes, bool]], passes: int
) -> tuple[float, int]:
    """Seconds per packet over ``passes`` sessions; bytes one session sends."""
    total = 0.0
    sent = 0
    for _ in range(passes):
        send = sender(kind, modules)
        sent = 0
        started = time.perf_counter()
        for data, key in units:
            sent += send(data, key)
        total += time.perf_counter() - started
    return total / (passes * len(units)), sent


def forward_table(args: argparse.Namespace) -> None:
    versions = {
        f"before ({args.baseline})": {
            name: baseline_module(args.baseline, path)
            for name, path in (
                ("rtp", "gateway/forward/rtp.py"),
                ("flv", "gateway/forward/flv.py"),
                ("params", "gateway/media/params.py"),
            )
        },
        "after": {"rtp": rtp, "flv": flv, "params": params},
    }
    print(f"\n{'forwarder case':<52} {'packets':>7} {'bytes b/a':>12}", end="")
    print("".join(f" {name + ' pkt/s':>21}" for name in versions) + f" {'added/pkt':>10}")
    for name, (kind, units) in forward_cases(args.seconds).items():
        per_packet: dict[str, list[float]] = {v: [] for v in versions}
        sent: dict[str, int] = {}
        for _ in range(args.rounds):
            for version, modules in versions.items():
                seconds, sent[version] = forward_round(kind, modules, units, args.passes)
                per_packet[version].append(seconds)
        before, after = (statistics.median(per_packet[v]) for v in versions)
        same = "same" if len(set(sent.values())) == 1 else "/".join(map(str, sent.values()))
        print(
            f"{name:<52} {len(units):>7} {same:>12} {1 / before:>21,.0f} {1 / after:>21,.0f}"
            f" {(after - before) * 1e6:>+8.2f}µs"
        )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", default=BASELINE, help="git commit to compare with")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--passes", type=int, default=20, help="passes over the clip per round")
    parser.add_argument("--seconds", type=int, default=20, help="length of the clips")
    args = parser.parse_args()
    versions = {f"before ({args.baseline})": baseline_module(args.baseline), "after": normalize}
    track = Track(index=0, kind="video", codec="h264", time_base=Fraction(1, 90000))
    print(f"{'case':<52} {'packets':>7} {'samples b/a':>12}", end="")
    print("".join(f" {name + ' pkt/s':>21}" for name in versions) + f" {'added/pkt':>10}")
    for name, (codec, packets) in cases(args.seconds).items():
        codec_track = replace(track, codec=codec)
        per_packet: dict[str, list[float]] = {v: [] for v in versions}
        samples: dict[str, int] = {}
        for _ in range(args.rounds):  # alternating: the box's drift hits both alike
            for version, module in versions.items():
                seconds, samples[version] = one_round(module, codec_track, packets, args.passes)
                per_packet[version].append(seconds)
        before, after = (statistics.median(per_packet[v]) for v in versions)
        counts = "/".join(str(samples[v]) for v in versions)
        print(
            f"{name:<52} {len(packets):>7} {counts:>12} {1 / before:>21,.0f} {1 / after:>21,.0f}"
            f" {(after - before) * 1e6:>+8.2f}µs"
        )
    forward_table(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
