"""How many cameras one box takes, and what each costs: the gateway against an ffmpeg per camera.

For each number of cameras N, with the same sources, the same centre and the same windows:

- **gateway**: one `camera-gateway run` recording every camera (fragmented MP4, 10 s segments)
  and forwarding every camera continuously to the centre;
- **gateway@COMMIT** (with ``--baseline REF``): the same, with the daemon's code as it was at
  REF (bench/baseline.py), so a change is measured against its previous version in one run;
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

CPU and memory are those of each system's whole process tree (bench/proctree.py): CPU summed
over every process seen in the window, memory as the sum of unique set sizes (USS), with RSS
and PSS for comparison. For a gateway of several processes, the started process is the
supervisor, a descendant with children of its own is a fork server, and the other descendants
are workers: "USS per worker" is what the workers hold, divided by the number of cameras.

Usage: python bench/run.py [--cameras 4,16,64 [--search]] [--baseline REF] [--windows 3]
       [--window 6] [--no-search] [--profile 1080p|720p] [--centre light|gstreamer] [--out DIR]
Without --cameras: N = 1, 4, 16, 32, 64, then a search for the largest N with zero loss.
Writes latest.json, latest.md and latest.png to --out (bench/results/ by default).
"""

from __future__ import annotations

import argparse
import contextlib
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import Baseline, worktree
from common import (
    CLIPS,
    ROOT,
    TICKS,
    ClipFrame,
    avcc_digest,
    clip_frames,
    expand_departures,
    free_port,
    make_clip,
    start_cameras,
    start_centre,
)
from proctree import ProcessTree, all_stats
from report import markdown, page, plot

RESULTS = ROOT / "bench" / "results"
SEGMENT_SECONDS = 10
SAMPLE_SECONDS = 1.0
"""How often the system's process tree is read within a window: a worker that exits loses at
most this much of its CPU; a reading of the whole of /proc costs a few milliseconds."""
MIB = 2**20


@dataclass
class System:
    """One way of doing the job for N cameras."""

    n: int
    cam_port: int
    centre_port: int
    work: Path
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)
    name: str = "system"

    def start(self) -> None:
        raise NotImplementedError

    def recordings(self) -> Path:
        raise NotImplementedError

    def camera_of(self, path: Path) -> str:
        return path.name.split("_", 1)[0]

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.poll() is None]

    def logs(self) -> list[Path]:
        raise NotImplementedError

    def failure(self) -> str | None:
        """Why the system is not running any more, if one of the processes started exited."""
        for proc, log in zip(self.procs, self.logs(), strict=True):
            if proc.poll() is not None:
                lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
                return f"{log.stem} exited with {proc.returncode}: {lines[-1] if lines else ''}"
        return None

    def stop(self) -> None:
        """Stop what was started, then whatever of its tree is left (a worker its supervisor
        did not stop, say): nothing of a point outlives it."""
        tree = ProcessTree(self.pids())
        left = tree.members()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        now = all_stats()
        for pid, s in left.items():
            if pid in now and now[pid].start == s.start:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for proc in self.procs:  # each was started in a process group of its own
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class Gateway(System):
    name: str = "gateway"
    code: Path = ROOT
    """Where the ``gateway`` package comes from: this tree, or a baseline's worktree."""
    env: dict[str, str] | None = None

    def recordings(self) -> Path:
        return self.work / "rec"

    def logs(self) -> list[Path]:
        return [self.work / "gateway.log"]

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
        with (self.work / "gateway.log").open("w") as log:
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "gateway", "run", "--config", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.code,
                    env=self.env,
                    start_new_session=True,
                )
            )


@dataclass
class Ffmpeg(System):
    name: str = "ffmpeg"

    def recordings(self) -> Path:
        return self.work / "ffmpeg-rec"

    def logs(self) -> list[Path]:
        return [self.work / f"ffmpeg-{i}.log" for i in range(self.n)]

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
            with (self.work / f"ffmpeg-{i}.log").open("w") as log:
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
                        stderr=log,
                        start_new_session=True,
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


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def _harness(n: int, clip: Path, work: Path, centre_kind: str) -> Iterator[tuple[Any, ...]]:
    """The cameras and the centre of one point, stopped on leaving whatever happened."""
    started: list[subprocess.Popen[str]] = []
    try:
        cameras, cam_port, departures = start_cameras(n, clip, work)
        started.append(cameras)
        centre, centre_port, arrivals = start_centre(n, work, centre_kind)
        started.append(centre)
        yield cameras, cam_port, departures, centre, centre_port, arrivals
    finally:
        for proc in reversed(started):
            _stop(proc)


def _window(
    tree: ProcessTree, harness: ProcessTree, system: System, seconds: float
) -> dict[str, Any]:
    """One measurement window; the tree is read every SAMPLE_SECONDS meanwhile, to see the
    processes that come and go."""
    t0, d0 = time.monotonic(), _disk_bytes(system.recordings())
    c0, h0 = tree.cpu_ticks(), harness.cpu_ticks()
    end = t0 + seconds
    while (now := time.monotonic()) < end - 0.05:
        time.sleep(min(SAMPLE_SECONDS, end - now))
        tree.cpu_ticks()
    t1, d1 = time.monotonic(), _disk_bytes(system.recordings())
    c1, h1 = tree.cpu_ticks(), harness.cpu_ticks()
    mem = tree.memory()
    cpu = 100 * (c1 - c0) / TICKS / (t1 - t0)
    return {
        "start_ns": int(t0 * 1e9),
        "end_ns": int(t1 * 1e9),
        "cpu_percent": cpu,
        "cpu_percent_per_camera": cpu / system.n,
        "uss_mib": mem.uss / MIB,
        "uss_mib_per_camera": mem.uss / MIB / system.n,
        "uss_started_mib": mem.uss_started / MIB,
        "uss_fork_server_mib": mem.uss_parents / MIB,
        "uss_mib_per_worker": mem.uss_workers / MIB / system.n if mem.workers else None,
        "rss_mib": mem.rss / MIB,
        "pss_mib": mem.pss / MIB,
        "processes": mem.processes,
        "workers": mem.workers,
        "disk_mbit_s": (d1 - d0) * 8 / 1e6 / (t1 - t0),
        "harness_cpu_percent": 100 * (h1 - h0) / TICKS / (t1 - t0),
    }


def measure(
    make: Callable[[int, int, int, Path], System],
    n: int,
    clip: Path,
    frames: list[ClipFrame],
    *,
    windows: int,
    window: float,
    centre_kind: str,
) -> dict[str, Any]:
    """One point: N cameras, one system, ``windows`` measurement windows."""
    work = Path(tempfile.mkdtemp(prefix=f"cg-bench-{n}-"))
    try:
        return _measure(make, n, clip, frames, work, windows, window, centre_kind)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(
    make: Callable[[int, int, int, Path], System],
    n: int,
    clip: Path,
    frames: list[ClipFrame],
    work: Path,
    windows: int,
    window: float,
    centre_kind: str,
) -> dict[str, Any]:
    with _harness(n, clip, work, centre_kind) as (
        cameras,
        cam_port,
        departures,
        centre,
        centre_port,
        arrivals,
    ):
        system = make(n, cam_port, centre_port, work)
        try:
            started = time.monotonic()
            system.start()
            tree = ProcessTree(system.pids())
            harness = ProcessTree([cameras.pid, centre.pid])
            first_segment = None
            deadline = started + 30
            while time.monotonic() < deadline and not system.failure():
                recording = {system.camera_of(p) for p in _files(system.recordings())}
                if len(recording) >= n:
                    first_segment = time.monotonic() - started
                    break
                time.sleep(0.1)
            time.sleep(2)  # settle
            tree.cpu_ticks()
            samples = [_window(tree, harness, system, window) for _ in range(windows)]
            time.sleep(1)  # let what was sent in the last window arrive
            failure = system.failure()
        finally:
            system.stop()
    if failure:
        print(f"{system.name} at {n} cameras: {failure}", file=sys.stderr, flush=True)

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

    def spread(key: str) -> dict[str, float] | None:
        values = [s[key] for s in samples if s[key] is not None]
        if not values:
            return None
        return {
            "median": round(statistics.median(values), 3),
            "min": round(min(values), 3),
            "max": round(max(values), 3),
        }

    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "system": system.name,
        "cameras": n,
        "cpu_percent": spread("cpu_percent"),
        "cpu_percent_per_camera": spread("cpu_percent_per_camera"),
        "uss_mib": spread("uss_mib"),
        "uss_mib_per_camera": spread("uss_mib_per_camera"),
        "uss_started_mib": spread("uss_started_mib"),
        "uss_fork_server_mib": spread("uss_fork_server_mib"),
        "uss_mib_per_worker": spread("uss_mib_per_worker"),
        "rss_mib": spread("rss_mib"),
        "pss_mib": spread("pss_mib"),
        "processes": spread("processes"),
        "workers": spread("workers"),
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
        "failure": failure,
    }


def lossless(point: dict[str, Any]) -> bool:
    return (
        point["frames_sent"] > 0
        and point["frames_not_recorded"] == 0
        and point["frames_not_forwarded"] == 0
    )


def _camera_counts(text: str) -> list[int]:
    try:
        counts = sorted({int(c) for c in text.split(",")})
    except ValueError:
        counts = []
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: camera counts separated by commas, e.g. 4,16,64"
        )
    return counts


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    return done.stdout.strip()


def _interrupt(_signum: int, _frame: object) -> None:
    """SIGTERM and SIGINT: leave through the ``finally`` blocks, which stop what was started
    (cameras, centre, systems) and remove the baseline's worktree; a second one is ignored so
    it cannot cut that short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


DEFAULT_CAMERAS = [1, 4, 16, 32, 64]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--cameras",
        type=_camera_counts,
        help="camera counts to measure, e.g. 4,16,64, and no search unless --search "
        f"(default: {','.join(map(str, DEFAULT_CAMERAS))}, then the search)",
    )
    parser.add_argument(
        "--search", action="store_true", help="search for the limit after --cameras"
    )
    parser.add_argument("--no-search", action="store_true", help="skip the search for the limit")
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also measure the gateway as it was at this git commit or branch, in the same run",
    )
    parser.add_argument("--windows", type=int, default=3, help="measurement windows per point")
    parser.add_argument("--window", type=float, default=6.0, help="seconds per window")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where latest.* are written")
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
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    counts = args.cameras or DEFAULT_CAMERAS
    search = (args.cameras is None or args.search) and not args.no_search
    clip = make_clip(args.profile, 120)
    frames = clip_frames(clip)
    with contextlib.ExitStack() as stack:
        baseline = stack.enter_context(worktree(args.baseline)) if args.baseline else None
        return _run(args, counts, search, clip, frames, baseline)


def _run(
    args: argparse.Namespace,
    counts: list[int],
    search: bool,
    clip: Path,
    frames: list[ClipFrame],
    baseline: Baseline | None,
) -> int:
    began = time.monotonic()
    points = []
    makers: list[Callable[[int, int, int, Path], System]] = [Gateway]
    if baseline is not None:
        makers.append(
            lambda *a: Gateway(*a, name=baseline.name, code=baseline.path, env=baseline.env())
        )
    makers.append(Ffmpeg)

    def run(n: int) -> dict[str, Any]:
        for make in makers:
            point = measure(
                make,
                n,
                clip,
                frames,
                windows=args.windows,
                window=args.window,
                centre_kind=args.centre,
            )
            print(json.dumps(point), flush=True)
            points.append(point)
        return next(p for p in points if p["cameras"] == n and p["system"] == "gateway")

    best = 0
    worst_lossy: int | None = None
    for n in counts:
        if lossless(run(n)):
            best = max(best, n)
        elif worst_lossy is None or n < worst_lossy:
            worst_lossy = n
    if search:
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
        "cameras": counts,
        "search": search,
        "gateway": {
            "commit": _git("rev-parse", "HEAD"),
            "modified": bool(_git("status", "--porcelain", "--", "gateway")),
        },
        "baseline": (
            {"ref": baseline.ref, "commit": baseline.commit, "name": baseline.name}
            if baseline
            else None
        ),
        "largest_lossless_cameras": best,
        "duration_seconds": round(time.monotonic() - began),
        "points": points,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "latest.md").write_text(page(results, table))
    plot(results, args.out / "latest.png")
    print(table)
    print(f"largest lossless: {best} cameras; {results['duration_seconds']} s")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("interrupted: what the benchmark started is stopped", file=sys.stderr)
        raise SystemExit(130) from None
