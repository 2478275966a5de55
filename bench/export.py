"""What exporting an hour of one camera costs: ``write_clip`` against ffmpeg's concat demuxer.

The source is an hour of one 1080p25 H.264 camera at 4 Mbit/s (2 s GOP) laid out as the
recorder stores it: 60 segments of 60 s, fragmented MP4 (``empty_moov+default_base_moof``,
0.5 s fragments, 90 kHz video time scale), each starting on a keyframe, each with the indexed
start of a camera recording without a break. They are cut once from the benchmarks' clip by
stream copy (no encoding) and cached in bench/.cache/; each is its own file, so the hour is
1.8 GB of distinct data, as on a real disk. Every repetition exports the whole hour with each
system, in alternating order:

- **write_clip**: ``gateway.evidence.clip.write_clip`` in this process, as the CLI calls it:
  the wall-clock text track, ``+faststart`` and the fsync of the output included;
- **ffmpeg**: ``ffmpeg -f concat -safe 0 -i list.txt -c copy -movflags +faststart out.mp4``, and
  then, timed apart, an fsync of its output (ffmpeg does not sync; an export must).

Wall time and CPU (user + system) of each; the ratio is write_clip over ffmpeg, without and
with ffmpeg's fsync. Then the time to sha256 one output (hashlib, 1 MiB reads), what verifying
a package will cost. The sources are read once before the first run and stay in the page
cache (the box has the memory for it), and so do the outputs until synced: these are the costs
of the work, not of a cold disk.

Usage: python bench/export.py [--minutes 60] [--repeats 3] [--out DIR]
Writes export.json and export.md to --out (bench/results/ by default).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import av

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, ROOT, make_clip

sys.path.insert(0, str(ROOT))
from gateway.evidence.clip import ClipSource, write_clip

RESULTS = ROOT / "bench" / "results"
SEGMENT_SECONDS = 60
T0 = 1796210100.0
"""2026-12-02 11:15:00 UTC: the hour's indexed start."""
MUXER = ["-movflags", "empty_moov+default_base_moof", "-frag_duration", "500000"]


def segments(minutes: int) -> list[ClipSource]:
    """``minutes`` recorder-like segments of 60 s (made once, then cached)."""
    folder = CACHE / "export-1080p"
    folder.mkdir(parents=True, exist_ok=True)
    first = folder / "seg-000.mp4"
    if not first.exists():
        partial = folder / "seg-000.part.mp4"
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-i",
                str(make_clip("1080p", 120)),
                "-t",
                str(SEGMENT_SECONDS),
                "-c",
                "copy",
                "-video_track_timescale",
                "90000",
                *MUXER,
                "-f",
                "mp4",
                str(partial),
            ],
            check=True,
        )
        partial.rename(first)
    sources = []
    for i in range(minutes):
        path = folder / f"seg-{i:03d}.mp4"
        if not path.exists():
            shutil.copyfile(first, path.with_suffix(".part"))
            path.with_suffix(".part").rename(path)
        sources.append(ClipSource(path, T0 + i * SEGMENT_SECONDS))
    return sources


def warm(sources: list[ClipSource]) -> None:
    """Read every source once, so that no system pays for bringing them into the page cache."""
    for source in sources:
        with source.path.open("rb", buffering=0) as f:
            while f.read(1 << 20):
                pass


def cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run_write_clip(sources: list[ClipSource], out: Path) -> dict[str, float]:
    cpu, began = cpu_self(), time.perf_counter()
    clip = write_clip(sources, sources[0].start, sources[-1].start + SEGMENT_SECONDS, out)
    wall = time.perf_counter() - began
    return {"wall_s": wall, "cpu_s": cpu_self() - cpu, "frames": clip.frames}


def run_ffmpeg(listing: Path, out: Path) -> dict[str, float]:
    began = time.perf_counter()
    proc = subprocess.Popen(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(listing),
            "-c",
            "copy",
            "-movflags",
            "+faststart",
            str(out),
        ]
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - began
    if proc.returncode:
        raise RuntimeError(f"ffmpeg exited with {proc.returncode}")
    synced = time.perf_counter()
    fsync(out)
    fsync_s = time.perf_counter() - synced
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "fsync_s": fsync_s,
        "wall_with_fsync_s": wall + fsync_s,
    }


def sha256_file(path: Path) -> dict[str, float]:
    cpu, began = cpu_self(), time.perf_counter()
    digest = hashlib.sha256()
    with path.open("rb", buffering=0) as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return {"wall_s": time.perf_counter() - began, "cpu_s": cpu_self() - cpu}


def probe(path: Path) -> dict[str, Any]:
    """Frames (from the moov, not counted) and duration of an output, and its top boxes."""
    done = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,nb_frames:format=duration",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(done.stdout)
    return {
        "streams": [(s["codec_name"], int(s.get("nb_frames", 0))) for s in info["streams"]],
        "duration_s": float(info["format"]["duration"]),
        "bytes": path.stat().st_size,
    }


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def markdown(results: dict[str, Any]) -> str:
    def cell(s: dict[str, float]) -> str:
        return f"{s['median']:.2f} ({s['min']:.2f}–{s['max']:.2f})"

    w, f = results["write_clip"], results["ffmpeg"]
    rows = [
        "| system | wall s | CPU s | fsync of the output s |",
        "| --- | ---: | ---: | ---: |",
        f"| write_clip | {cell(w['wall_s'])} | {cell(w['cpu_s'])} | in its wall time |",
        f"| ffmpeg concat | {cell(f['wall_s'])} | {cell(f['cpu_s'])} | {cell(f['fsync_s'])} |",
        f"| ffmpeg concat + fsync | {cell(f['wall_with_fsync_s'])} | {cell(f['cpu_s'])} "
        "| included |",
    ]
    r, h = results["ratio"], results["sha256"]
    return (
        f"# Export of {results['source']}\n\n{results['machine']}; {results['repeats']} "
        "repetitions, alternating which system runs first (median, min–max). Sources and "
        "outputs in the page cache.\n\n" + "\n".join(rows) + "\n\n"
        f"Ratio write_clip / ffmpeg, wall: **{r['wall']['median']:.2f}** "
        f"({r['wall']['min']:.2f}–{r['wall']['max']:.2f}); against ffmpeg + fsync: "
        f"**{r['wall_vs_ffmpeg_fsync']['median']:.2f}**; CPU: **{r['cpu']['median']:.2f}**.\n\n"
        f"sha256 of one output ({results['output']['bytes'] / 1e9:.2f} GB): "
        f"{cell(h['wall_s'])} s wall, {cell(h['cpu_s'])} s CPU.\n\n"
        f"Outputs: write_clip {results['output']['write_clip']}, ffmpeg "
        f"{results['output']['ffmpeg']} (codec, frames).\n\n"
        f"Reproduce: `{results['command']}`\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=int, default=60, help="segments of 60 s (default 60)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sources = segments(args.minutes)
    warm(sources)
    work = CACHE / "export-out"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    listing = work / "list.txt"
    listing.write_text("".join(f"file '{s.path}'\n" for s in sources))
    runs: dict[str, list[dict[str, float]]] = {"write_clip": [], "ffmpeg": [], "sha256": []}
    output: dict[str, Any] = {}
    try:
        for i in range(args.repeats):
            order = ["write_clip", "ffmpeg"] if i % 2 == 0 else ["ffmpeg", "write_clip"]
            for system in order:
                out = work / f"{system}.mp4"
                os.sync()  # no run pays for writing back what an earlier one left dirty
                if system == "write_clip":
                    runs[system].append(run_write_clip(sources, out))
                else:
                    runs[system].append(run_ffmpeg(listing, out))
                print(system, json.dumps(runs[system][-1]), flush=True)
                if i == 0:
                    output[system] = probe(out)
                if system == "write_clip":
                    runs["sha256"].append(sha256_file(out))
                    print("sha256", json.dumps(runs["sha256"][-1]), flush=True)
                out.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def stat(system: str, key: str) -> dict[str, float]:
        return spread([r[key] for r in runs[system]])

    pairs = list(zip(runs["write_clip"], runs["ffmpeg"], strict=True))
    lavf = ".".join(map(str, av.library_versions["libavformat"]))
    results = {
        "machine": (
            f"{platform.node() or 'box'}: {platform.machine()}, "
            f"{len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}, "
            f"PyAV {av.__version__} (libavformat {lavf}), ffmpeg CLI {_ffmpeg_version()}"
        ),
        "source": (
            f"{args.minutes} min of one 1920x1080 25 fps H.264 4 Mbit/s camera "
            f"({args.minutes} segments of {SEGMENT_SECONDS} s, fragmented MP4)"
        ),
        "gateway": {
            "commit": _git("rev-parse", "HEAD"),
            "modified": bool(_git("status", "--porcelain", "--", "gateway/evidence/clip")),
        },
        "repeats": args.repeats,
        "write_clip": {k: stat("write_clip", k) for k in ("wall_s", "cpu_s")},
        "ffmpeg": {
            k: stat("ffmpeg", k) for k in ("wall_s", "cpu_s", "fsync_s", "wall_with_fsync_s")
        },
        "ratio": {
            "wall": spread([w["wall_s"] / f["wall_s"] for w, f in pairs]),
            "wall_vs_ffmpeg_fsync": spread(
                [w["wall_s"] / f["wall_with_fsync_s"] for w, f in pairs]
            ),
            "cpu": spread([w["cpu_s"] / f["cpu_s"] for w, f in pairs]),
        },
        "sha256": {k: stat("sha256", k) for k in ("wall_s", "cpu_s")},
        "output": {
            "bytes": output["write_clip"]["bytes"],
            "write_clip": output["write_clip"]["streams"],
            "ffmpeg": output["ffmpeg"]["streams"],
        },
        "runs": runs,
        "command": " ".join(
            [
                ".venv/bin/python bench/export.py",
                f"--minutes {args.minutes}",
                f"--repeats {args.repeats}",
            ]
        ),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "export.json").write_text(json.dumps(results, indent=2) + "\n")
    page = markdown(results)
    (args.out / "export.md").write_text(page)
    print(page)
    return 0


def _ffmpeg_version() -> str:
    done = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True)
    return done.stdout.split()[2] if done.stdout else "?"


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    return done.stdout.strip()


if __name__ == "__main__":
    raise SystemExit(main())
