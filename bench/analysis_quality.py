"""How well the camera-integrity analysis finds covers, defocus, moves and lost privacy masks,
and what it costs per camera.

Quality: the labelled set of ``tests/analysis_set.py`` in its larger version (every
photograph, more corridors, three at 1280 × 720, each variant drawn three times with other
random draws), every picture encoded as one H.264 keyframe with libx264 and decoded back
through ``gateway.analysis.KeyframeDecoder``. For each class: precision and recall of the
single-keyframe verdict (``gateway.analysis.judge.verdict``, the tests the state machine
debounces); the false alarms on each kind of healthy picture; the error of the measured
displacement, in percent of the picture's width, over every sample with a known one.

Cost: a corridor keyframe at 1920 × 1080 (4 Mbit/s) and at 1280 × 720 (2 Mbit/s), as a camera
sends it (libx264, 2 s GOP, constrained bitrate: see ``camera_keyframe``), decoded and
analysed by a learned ``CameraMonitor`` many times; beside it, in the same run and alternating
with it, a bare decode of the same packet by a fresh PyAV decoder (one thread, no scaling). CPU
time is this process's user + system time. The share of one core per camera is the CPU per
keyframe over the 2 s between analysed keyframes (the default ``interval``).

Usage: python bench/analysis_quality.py [--corridors 8] [--hd 3] [--repeats 60] [--out DIR]
Writes analysis_quality.json and analysis_quality.md to --out (bench/results/ by default).
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import resource
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from analysis_scenes import PHOTOS, corridor_scene, scenes
from analysis_set import CLASSES, Outcome, build, encode_keyframe, evaluate

from gateway.analysis import CameraMonitor, KeyframeDecoder, Settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
INTERVAL = Settings().interval


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def quality(corridors: int, hd: int) -> dict[str, Any]:
    rng = np.random.default_rng(2026)
    outcomes: list[Outcome] = []
    started = time.monotonic()
    for scene in scenes(corridors, PHOTOS, hd):
        outcomes += evaluate(build(scene, rng, large=True))
    classes = {}
    for c in CLASSES:
        tp = sum(1 for o in outcomes if c in o.sample.labels and c in o.found)
        fn = sum(1 for o in outcomes if c in o.sample.labels and c not in o.found)
        fp = sum(1 for o in outcomes if c not in o.sample.labels and c in o.found)
        classes[c] = {
            "positives": tp + fn,
            "found": tp,
            "false_alarms": fp,
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None,
            "missed": [
                f"{o.sample.scene}/{o.sample.variant}"
                for o in outcomes
                if c in o.sample.labels and c not in o.found
            ],
            "alarms": [
                f"{o.sample.scene}/{o.sample.variant}"
                for o in outcomes
                if c not in o.sample.labels and c in o.found
            ],
        }
    negatives: dict[str, dict[str, int]] = collections.defaultdict(
        lambda: {"pictures": 0, "alarms": 0}
    )
    for o in outcomes:
        if not o.sample.labels:
            kind = negatives[o.sample.variant.split("(")[0]]
            kind["pictures"] += 1
            kind["alarms"] += bool(o.found)
    errors = [e for o in outcomes if (e := o.error) is not None]
    unrecognised = [
        f"{o.sample.scene}/{o.sample.variant}"
        for o in outcomes
        if o.sample.truth and o.displacement is None
    ]
    rotation = [
        abs(o.displacement[2] - o.sample.truth[2])
        for o in outcomes
        if o.sample.truth is not None and o.displacement is not None
    ]
    return {
        "scenes": len({o.sample.scene for o in outcomes}),
        "pictures": len(outcomes),
        "negatives": sum(1 for o in outcomes if not o.sample.labels),
        "seconds": round(time.monotonic() - started, 1),
        "classes": classes,
        "healthy": dict(negatives),
        "displacement": {
            "samples": len(errors),
            "unrecognised": unrecognised,
            "mean_percent": statistics.fmean(errors),
            "p95_percent": float(np.percentile(errors, 95)),
            "max_percent": max(errors),
            "rotation_max_degrees": max(rotation),
        },
    }


def bare_decode(data: bytes) -> None:
    """What decoding the keyframe costs at the least: a fresh decoder, one thread, the picture
    left in YUV (the deblocking filter skipped, as the analyser's decoder does)."""
    ctx = av.CodecContext.create("h264", "r")
    ctx.thread_count = 1
    ctx.options = {"skip_loop_filter": "all"}
    frames = ctx.decode(av.Packet(data)) or ctx.decode(None)
    assert frames


def camera_keyframe(picture: np.ndarray, bitrate: int) -> bytes:
    """The keyframe of the second GOP of a 2 s GOP stream at a camera's ``bitrate`` (libx264,
    constrained to a half-second buffer; a little sensor noise on every picture)."""
    h, w = picture.shape[:2]
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuv420p"
    ctx.time_base = Fraction(1, 25)
    ctx.bit_rate = bitrate
    ctx.options = {
        "preset": "veryfast",
        "tune": "zerolatency",
        "x264-params": f"keyint=50:min-keyint=50:scenecut=0:vbv-maxrate={bitrate // 1000}:"
        f"vbv-bufsize={bitrate // 2000}",
    }
    rng = np.random.default_rng(0)
    keyframes = []
    for n in range(51):
        noisy = np.clip(picture + rng.normal(0, 2.0, picture.shape), 0, 255).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(noisy, format="rgb24")
        frame.pts = n
        keyframes += [bytes(p) for p in ctx.encode(frame) if p.is_keyframe]
    keyframes += [bytes(p) for p in ctx.encode(None) if p.is_keyframe]
    return keyframes[-1]


def cost(width: int, height: int, bitrate: int, repeats: int) -> dict[str, Any]:
    scene = corridor_scene(300, width, height)
    picture = scene.view()
    data = camera_keyframe(picture, bitrate)
    decoder = KeyframeDecoder("h264")
    monitor = CameraMonitor(Settings())
    for k in range(5):
        monitor.observe(decoder.decode_bytes(encode_keyframe(picture)[0]), 2.0 * k)
    assert monitor.state == "ok"
    at = 10.0
    analysed, bare = [], []
    for _ in range(repeats):
        t = cpu()
        bare_decode(data)
        bare.append(cpu() - t)
        t = cpu()
        at += INTERVAL
        status = monitor.observe(decoder.decode_bytes(data), at)
        analysed.append(cpu() - t)
        assert status.state == "ok"
    # each resource sample is coarse (the kernel's tick): totals over the repetitions are exact
    per_analysed = sum(analysed) / repeats
    per_bare = sum(bare) / repeats
    return {
        "size": f"{width}x{height}",
        "bitrate": bitrate,
        "keyframe_bytes": len(data),
        "repeats": repeats,
        "decode_and_analysis_ms": 1000 * per_analysed,
        "bare_decode_ms": 1000 * per_bare,
        "analysis_ms": 1000 * (per_analysed - per_bare),
        "core_share_percent": 100 * per_analysed / INTERVAL,
        "bare_core_share_percent": 100 * per_bare / INTERVAL,
    }


def markdown(result: dict[str, Any]) -> str:
    q = result["quality"]
    lines = [
        "# Camera integrity: quality and cost",
        "",
        f"{result['when']} on {result['host']}: {q['pictures']} H.264 keyframes from "
        f"{q['scenes']} scenes ({q['negatives']} healthy), OpenCV {result['opencv']}, "
        f"PyAV {result['pyav']}.",
        "",
        "## Single-keyframe verdicts per class",
        "",
        "| class | pictures | found | false alarms | precision | recall |",
        "|---|---|---|---|---|---|",
    ]
    for c, v in q["classes"].items():
        p = "–" if v["precision"] is None else f"{v['precision']:.3f}"
        r = "–" if v["recall"] is None else f"{v['recall']:.3f}"
        lines.append(f"| {c} | {v['positives']} | {v['found']} | {v['false_alarms']} | {p} | {r} |")
    missed = [m for v in q["classes"].values() for m in v["missed"]]
    alarms = [f"{m} ({c})" for c, v in q["classes"].items() for m in v["alarms"]]
    lines += [
        "",
        f"Missed: {', '.join(missed) if missed else 'none'}. "
        f"False alarms: {', '.join(alarms) if alarms else 'none'}.",
        "",
    ]
    lines += ["## Healthy pictures", "", "| kind | pictures | with an alarm |", "|---|---|---|"]
    for kind, v in sorted(q["healthy"].items()):
        lines.append(f"| {kind} | {v['pictures']} | {v['alarms']} |")
    d = q["displacement"]
    lines += [
        "",
        "## Displacement measured",
        "",
        f"Over {d['samples']} moves with a known displacement (3 % to 20 % of the width, "
        f"tilts of 2° to 10°): error of the centre's shift mean {d['mean_percent']:.3f} %, "
        f"95th percentile {d['p95_percent']:.3f} %, max {d['max_percent']:.3f} % of the width; "
        f"rotation error at most {d['rotation_max_degrees']:.2f}°. "
        f"Not recognised: {', '.join(d['unrecognised']) or 'none'}.",
        "",
        "## Cost per camera (one keyframe analysed every 2 s)",
        "",
        "| keyframe | stream | bytes | bare decode | decode + analysis | analysis alone "
        "| share of one core | of which the bare decode |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in result["cost"]:
        lines.append(
            f"| {c['size']} | {c['bitrate'] / 1e6:g} Mbit/s | {c['keyframe_bytes']} "
            f"| {c['bare_decode_ms']:.2f} ms | {c['decode_and_analysis_ms']:.2f} ms "
            f"| {c['analysis_ms']:.2f} ms | {c['core_share_percent']:.3f} % "
            f"| {c['bare_core_share_percent']:.3f} % |"
        )
    lines += ["", f"Reproduce: `.venv/bin/python bench/analysis_quality.py {result['args']}`", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corridors", type=int, default=8)
    parser.add_argument("--hd", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    result: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
        "opencv": cv2.__version__,
        "pyav": av.__version__,
        "args": f"--corridors {args.corridors} --hd {args.hd} --repeats {args.repeats}",
        "cost": [
            cost(1920, 1080, 4_000_000, args.repeats),
            cost(1280, 720, 2_000_000, args.repeats),
        ],
        "quality": quality(args.corridors, args.hd),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "analysis_quality.json").write_text(
        json.dumps(result, indent=2) + "\n", encoding="utf-8"
    )
    text = markdown(result)
    (args.out / "analysis_quality.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
