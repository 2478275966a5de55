"""How many cameras one box takes, and what each costs: the gateway against an ffmpeg per camera.

For each number of cameras N, with the same sources, the same centre and the same windows:

- **gateway**: one `camera-gateway run` recording every camera (fragmented MP4, 10 s segments)
  and forwarding every camera continuously to the centre;
- **ffmpeg**: one `ffmpeg -c copy -f tee` per camera doing the same job (a segment recorder
  and an RTSP push): what an integrator would wire instead, and close to the practical limit.

Cameras are the GStreamer RTSP server replaying a pre-encoded 1080p25 H.264 clip (4 Mbit/s,
2 s GOP), one pipeline per client, paced in real time; the centre is bench/centre.py, a light
RTSP ingest (``--centre gstreamer`` uses the tests' GStreamer ingest instead).
Each access unit is identified by the hash of its first slice, which stream copy never changes,
so loss and latency are counted exactly: cameras log when each keyframe leaves (the other
pictures leave at their timestamps after it: the clip is replayed in real time), the centre logs
each picture received, and the recordings are read back. The harness is kept light, because it
shares the box with what it measures: the cameras send the clip as stored, without a parser,
with a Python callback per keyframe only, and the centre looks at nothing but RTP headers and
first slices.

Usage: python bench/run.py [--cameras 1,4,16,32,64] [--windows 3] [--window 6] [--no-search]
       [--profile 1080p|720p] [--centre light|gstreamer]
Writes bench/results/latest.json, latest.md and latest.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    CLIPS,
    ROOT,
    TICKS,
    ClipFrame,
    avcc_digest,
    clip_frames,
    cpu_ticks,
    expand_departures,
    free_port,
    make_clip,
    rss_bytes,
    start_cameras,
    start_centre,
)

RESULTS = ROOT / "bench" / "results"
SEGMENT_SECONDS = 10


@dataclass
class System:
    """One way of doing the job for N cameras."""

    n: int
    cam_port: int
    centre_port: int
    work: Path
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)

    name = "system"

    def start(self) -> None:
        raise NotImplementedError

    def recordings(self) -> Path:
        raise NotImplementedError

    def camera_of(self, path: Path) -> str:
        return path.name.split("_", 1)[0]

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.poll() is None]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


class Gateway(System):
    name = "gateway"

    def recordings(self) -> Path:
        return self.work / "rec"

    def start(self) -> None:
        lines = [
            "site_id: bench",
            f"storage: {{path: {self.recordings()}, quota: 50GiB, min_free: 1GiB, "
            f"segment_duration: {SEGMENT_SECONDS}s}}",
            f"uplink: {{url: 'rtsp://127.0.0.1:{self.centre_port}/{{site_id}}/{{camera_id}}'}}",
            f"control: {{socket: {self.work}/ctl.sock}}",
            f"metrics: {{listen: '127.0.0.1:{free_port()}'}}",
            "cameras:",
            *(
                f"  - {{id: cam{i}, url: 'rtsp://127.0.0.1:{self.cam_port}/cam{i}', "
                "forward: continuous}"
                for i in range(self.n)
            ),
        ]
        config = self.work / "gateway.yaml"
        config.write_text("\n".join(lines) + "\n")
        log = (self.work / "gateway.log").open("w")
        self.procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "gateway", "run", "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        )


class Ffmpeg(System):
    name = "ffmpeg"

    def recordings(self) -> Path:
        return self.work / "ffmpeg-rec"

    def start(self) -> None:
        self.recordings().mkdir(parents=True, exist_ok=True)
        segment = (
            f"[f=segment:segment_time={SEGMENT_SECONDS}:reset_timestamps=1:segment_format=mp4:"
            "segment_format_options=movflags=empty_moov+default_base_moof\\\\:"
            "frag_duration=500000]"
        )
        for i in range(self.n):
            out = f"{segment}{self.recordings()}/cam{i}_%03d.mp4"
            push = f"[f=rtsp:rtsp_transport=tcp]rtsp://127.0.0.1:{self.centre_port}/bench/cam{i}"
            self.procs.append(
                subprocess.Popen(
                    [
                        "ffmpeg",
                        "-nostdin",
                        "-v",
                        "error",
                        "-rtsp_transport",
                        "tcp",
                        "-i",
                        f"rtsp://127.0.0.1:{self.cam_port}/cam{i}",
                        "-map",
                        "0:v",
                        "-c",
                        "copy",
                        "-f",
                        "tee",
                        f"{out}|{push}",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=(self.work / f"ffmpeg-{i}.log").open("w"),
                )
            )


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".mp4" in p.name]


def _disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in _files(root) if p.exists())


def _recorded_digests(system: System) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for path in _files(system.recordings()):
        camera = system.camera_of(path)
        try:
            with av.open(str(path)) as container:
                for packet in container.demux(container.streams.video[0]):
                    if packet.size and (digest := avcc_digest(bytes(packet))):
                        found[camera].add(digest)
        except (av.error.FFmpegError, IndexError):
            continue
    return found


def _read_log(path: Path) -> list[tuple[int, str, str]]:
    entries = []
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                entries.append((int(parts[0]), parts[1], parts[2]))
    return entries


def measure(
    kind: type[System],
    n: int,
    clip: Path,
    frames: list[ClipFrame],
    *,
    windows: int,
    window: float,
    centre_kind: str,
) -> dict[str, Any]:
    """One point: N cameras, one system, ``windows`` measurement windows."""
    work = Path(tempfile.mkdtemp(prefix=f"cg-bench-{kind.name}-{n}-"))
    cameras, cam_port, departures = start_cameras(n, clip, work)
    centre, centre_port, arrivals = start_centre(n, work, centre_kind)
    system = kind(n, cam_port, centre_port, work)
    started = time.monotonic()
    system.start()
    first_segment = None
    deadline = started + 30
    while time.monotonic() < deadline:
        recording = {system.camera_of(p) for p in _files(system.recordings())}
        if len(recording) >= n:
            first_segment = time.monotonic() - started
            break
        time.sleep(0.1)
    time.sleep(2)  # settle
    samples = []
    harness = [cameras.pid, centre.pid]
    for _ in range(windows):
        pids = system.pids()
        t0, d0 = time.monotonic(), _disk_bytes(system.recordings())
        c0, h0 = sum(cpu_ticks(p) for p in pids), sum(cpu_ticks(p) for p in harness)
        time.sleep(window)
        t1, d1 = time.monotonic(), _disk_bytes(system.recordings())
        c1, h1 = sum(cpu_ticks(p) for p in pids), sum(cpu_ticks(p) for p in harness)
        cpu = 100 * (c1 - c0) / TICKS / (t1 - t0)
        samples.append(
            {
                "start_ns": int(t0 * 1e9),
                "end_ns": int(t1 * 1e9),
                "cpu_percent": cpu,
                "cpu_percent_per_camera": cpu / n,
                "rss_mib": sum(rss_bytes(p) for p in pids) / 2**20,
                "disk_mbit_s": (d1 - d0) * 8 / 1e6 / (t1 - t0),
                "harness_cpu_percent": 100 * (h1 - h0) / TICKS / (t1 - t0),
            }
        )
    time.sleep(1)  # let what was sent in the last window arrive
    system.stop()
    centre.terminate()
    cameras.terminate()
    centre.wait(10)
    cameras.wait(10)

    first_ns, last_ns = samples[0]["start_ns"], samples[-1]["end_ns"]
    sent: dict[str, dict[str, int]] = defaultdict(dict)
    for ns, mount, digest in expand_departures(_read_log(departures), frames):
        if first_ns <= ns <= last_ns:
            sent[mount.strip("/")].setdefault(digest, ns)
    arrived: dict[str, dict[str, int]] = defaultdict(dict)
    for ns, path, digest in _read_log(arrivals):
        arrived[path.rsplit("/", 1)[-1]].setdefault(digest, ns)
    recorded = _recorded_digests(system)
    sent_frames = sum(len(v) for v in sent.values())
    lost_forward = sum(len(set(v) - set(arrived[c])) for c, v in sent.items())
    lost_record = sum(len(set(v) - recorded[c]) for c, v in sent.items())
    latencies = sorted(
        (arrived[c][d] - ns) / 1e6
        for c, v in sent.items()
        for d, ns in v.items()
        if d in arrived[c]
    )
    shutil.rmtree(work, ignore_errors=True)

    def spread(key: str) -> dict[str, float]:
        values = [s[key] for s in samples]
        return {
            "median": round(statistics.median(values), 3),
            "min": round(min(values), 3),
            "max": round(max(values), 3),
        }

    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "system": kind.name,
        "cameras": n,
        "cpu_percent": spread("cpu_percent"),
        "cpu_percent_per_camera": spread("cpu_percent_per_camera"),
        "rss_mib": spread("rss_mib"),
        "harness_cpu_percent": spread("harness_cpu_percent"),
        "disk_mbit_s": spread("disk_mbit_s"),
        "frames_sent": sent_frames,
        "frames_not_recorded": lost_record,
        "frames_not_forwarded": lost_forward,
        "latency_ms": {
            "p50": round(statistics.median(latencies), 1) if latencies else None,
            "p99": round(quantiles[98], 1) if latencies else None,
        },
        "time_to_first_segment_s": round(first_segment, 2) if first_segment else None,
    }


def lossless(point: dict[str, Any]) -> bool:
    return (
        point["frames_sent"] > 0
        and point["frames_not_recorded"] == 0
        and point["frames_not_forwarded"] == 0
    )


def markdown(results: dict[str, Any]) -> str:
    rows = [
        "| cameras | system | CPU % of one core (median, min–max) | CPU per camera "
        "| ratio to ffmpeg | RSS MiB | not recorded / not forwarded / sent "
        "| camera→centre latency p50 / p99 ms | first segment s | disk Mbit/s "
        "| cameras + centre CPU % |",
        "| ---: | --- | --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |",
    ]
    by_n: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    for point in results["points"]:
        by_n[point["cameras"]][point["system"]] = point
    for n in sorted(by_n):
        baseline = by_n[n].get("ffmpeg")
        for name in ("gateway", "ffmpeg"):
            p = by_n[n].get(name)
            if p is None:
                continue
            cpu = p["cpu_percent"]
            ratio = (
                f"{cpu['median'] / baseline['cpu_percent']['median']:.2f}"
                if baseline and name == "gateway" and baseline["cpu_percent"]["median"]
                else ""
            )
            rows.append(
                f"| {n} | {name} | {cpu['median']:.1f} ({cpu['min']:.1f}–{cpu['max']:.1f}) "
                f"| {p['cpu_percent_per_camera']['median']:.2f} | {ratio} "
                f"| {p['rss_mib']['median']:.0f} "
                f"| {p['frames_not_recorded']} / {p['frames_not_forwarded']} / {p['frames_sent']} "
                f"| {p['latency_ms']['p50']} / {p['latency_ms']['p99']} "
                f"| {p['time_to_first_segment_s']} | {p['disk_mbit_s']['median']:.1f} "
                f"| {p['harness_cpu_percent']['median']:.0f} |"
            )
    return "\n".join(rows) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cpu_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for name, style in (("gateway", "o-"), ("ffmpeg", "s--")):
        points = sorted(
            (p for p in results["points"] if p["system"] == name), key=lambda p: p["cameras"]
        )
        ns = [p["cameras"] for p in points]
        cpu_ax.errorbar(
            ns,
            [p["cpu_percent_per_camera"]["median"] for p in points],
            yerr=[
                [
                    p["cpu_percent_per_camera"]["median"] - p["cpu_percent_per_camera"]["min"]
                    for p in points
                ],
                [
                    p["cpu_percent_per_camera"]["max"] - p["cpu_percent_per_camera"]["median"]
                    for p in points
                ],
            ],
            fmt=style,
            label=name,
            capsize=3,
        )
        loss_ax.plot(
            ns,
            [
                100
                * (p["frames_not_recorded"] + p["frames_not_forwarded"])
                / max(1, 2 * p["frames_sent"])
                for p in points
            ],
            style,
            label=name,
        )
    counts = sorted({p["cameras"] for p in results["points"]} & {1, 2, 4, 8, 16, 32, 64, 128})
    cpu_ax.set(xscale="log", xlabel="cameras", ylabel="CPU per camera (% of one core)")
    cpu_ax.set_title("CPU per camera: record + forward")
    loss_ax.set(xscale="log", xlabel="cameras", ylabel="frames lost (%)")
    loss_ax.set_title("Frames not recorded or not forwarded")
    for ax in (cpu_ax, loss_ax):
        ax.set_xticks(counts, [str(n) for n in counts])
        ax.minorticks_off()
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(results["machine"]["description"], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cameras", default="1,4,16,32,64")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--window", type=float, default=6.0)
    parser.add_argument("--no-search", action="store_true", help="skip the search for the limit")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot of latest.json")
    parser.add_argument("--profile", default="1080p", choices=sorted(CLIPS), help="camera clips")
    parser.add_argument(
        "--centre",
        default="light",
        choices=("light", "gstreamer"),
        help="the centre's ingest: bench/centre.py, or the GStreamer RTSP server of the tests",
    )
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads((args.out / "latest.json").read_text()), args.out / "latest.png")
        return 0
    clip = make_clip(args.profile, 120)
    frames = clip_frames(clip)
    counts = [int(c) for c in args.cameras.split(",")]
    began = time.monotonic()
    points = []

    def run(n: int) -> dict[str, Any]:
        result = None
        for kind in (Gateway, Ffmpeg):
            point = measure(
                kind,
                n,
                clip,
                frames,
                windows=args.windows,
                window=args.window,
                centre_kind=args.centre,
            )
            print(json.dumps(point), flush=True)
            points.append(point)
            if kind is Gateway:
                result = point
        assert result is not None
        return result

    best = 0
    worst_lossy: int | None = None
    for n in counts:
        if lossless(run(n)):
            best = max(best, n)
        elif worst_lossy is None or n < worst_lossy:
            worst_lossy = n
    if not args.no_search:
        # Largest N with zero loss: half as many again past the list, then halve the interval.
        low, high = best, worst_lossy
        for _ in range(3):
            n = low + max(1, low // 2) if high is None else (low + high) // 2
            if n <= low or (high is not None and n >= high):
                break
            if lossless(run(n)):
                low = n
            else:
                high = n
        best = low
    results = {
        "machine": {
            "description": (
                f"{platform.node() or 'box'}: {platform.processor() or platform.machine()}, "
                f"{len(os.sched_getaffinity(0))} cores, Python "
                f"{platform.python_version()}, PyAV {av.__version__}"
            ),
            "cores": len(os.sched_getaffinity(0)),
        },
        "source": (
            f"{CLIPS[args.profile][0]} at 25 fps, H.264 {CLIPS[args.profile][1]}bit/s, "
            "2 s GOP, replayed in real time"
        ),
        "centre": args.centre,
        "windows": args.windows,
        "window_seconds": args.window,
        "largest_lossless_cameras": best,
        "duration_seconds": round(time.monotonic() - began),
        "points": points,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "latest.md").write_text(
        f"# Benchmark: {results['source']}\n\n{results['machine']['description']}; "
        f"{args.windows} windows of {args.window:g} s per point (median, min–max).\n\n"
        f"Largest number of cameras with zero loss (gateway): **{best}**.\n\n{table}"
    )
    plot(results, args.out / "latest.png")
    print(table)
    print(f"largest lossless: {best} cameras; {results['duration_seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
