"""Latency and CPU of forwarding: camera → gateway → centre, for N 1080p25 cameras.

The cameras (GStreamer, replaying a pre-encoded 1080p25 4 Mbit/s clip) log when each access
unit enters their RTP payloader; the centre (GStreamer RTSP ingest) logs when it leaves its
depayloader. Access units are matched by the hash of their slices, which stream copy never
changes. The gateway forwards every camera continuously while recording it; a second run
without forwarding gives the CPU the forward itself costs.

Usage: python bench/forward_latency.py [--cameras 4] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, TICKS, free_port, make_clip, start_ready
from proctree import ProcessTree


def _pull_directly(url: str, arrivals: dict[str, int], stop: threading.Event) -> None:
    """A client pulling the camera itself, the way the gateway does: the reference for
    the latency the gateway adds."""
    import av

    sys.path.insert(0, str(ROOT / "tests" / "support"))
    from digest import slice_digest

    options = {"rtsp_transport": "tcp", "analyzeduration": "200000", "probesize": "65536"}
    with av.open(url, options=options) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                arrivals.setdefault(slice_digest(bytes(packet)), time.monotonic_ns())
            if stop.is_set():
                return


def run(cameras: int, seconds: float, forward: bool, work: Path) -> dict[str, float]:
    clip = make_clip("1080p", 120)
    departures, arrivals = work / "departures.log", work / "arrivals.log"
    for log in (departures, arrivals):
        log.unlink(missing_ok=True)
    cam_port, centre_port = free_port(), free_port()
    camera = start_ready(
        [
            "/usr/bin/python3",
            str(ROOT / "tests/support/rtsp_camera.py"),
            "--port",
            str(cam_port),
            "--departures",
            str(departures),
        ]
        + [a for i in range(cameras) for a in ("--mount", f"/cam{i}:clip={clip}:shared=1")],
        work / "cameras.log",
    )
    centre = start_ready(
        [
            "/usr/bin/python3",
            str(ROOT / "tests/support/rtsp_receiver.py"),
            "--port",
            str(centre_port),
            "--out",
            str(work / "centre"),
            "--arrivals",
            str(arrivals),
        ]
        + [a for i in range(cameras) for a in ("--path", f"/bench/cam{i}")],
        work / "centre.log",
    )
    mode = "continuous" if forward else "off"
    lines = [
        f"site_id: bench\nstorage: {{path: {work}/rec-{mode}, quota: 20GiB, min_free: 1GiB, "
        "segment_duration: 10s}",
        f"uplink: {{url: 'rtsp://127.0.0.1:{centre_port}/{{site_id}}/{{camera_id}}'}}",
        f"control: {{socket: {work}/ctl.sock}}",
        f"metrics: {{listen: 127.0.0.1:{free_port()}}}",
        "cameras:",
        *(
            f"  - {{id: cam{i}, url: 'rtsp://127.0.0.1:{cam_port}/cam{i}', forward: {mode}}}"
            for i in range(cameras)
        ),
    ]
    config = work / f"gw-{mode}.yaml"
    config.write_text("\n".join(lines) + "\n")
    gateway = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "--config", str(config)],
        stdout=(work / f"gateway-{mode}.log").open("w"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    direct: dict[str, int] = {}
    stop = threading.Event()
    reader = threading.Thread(
        target=_pull_directly, args=(f"rtsp://127.0.0.1:{cam_port}/cam0", direct, stop)
    )
    try:
        time.sleep(2)
        if forward:
            reader.start()
        time.sleep(6)
        tree = ProcessTree([gateway.pid])  # the supervisor, its fork server and its workers
        g0, t0 = tree.cpu_ticks() / TICKS, time.monotonic()
        time.sleep(seconds)
        g1, t1 = tree.cpu_ticks() / TICKS, time.monotonic()
        rss = tree.memory().uss
    finally:
        stop.set()
        if reader.is_alive():
            reader.join(5)
        gateway.terminate()
        gateway.wait(10)
        camera.terminate()
        centre.terminate()
        camera.wait(10)
        centre.wait(10)
    result = {
        "cpu_percent": 100 * (g1 - g0) / (t1 - t0),
        "uss_mib": rss / 2**20,
    }
    if forward:
        # Every camera replays the same clip: match frames of camera 0 only.
        sent = {}
        for line in departures.read_text().splitlines():
            ns, mount, digest = line.split()
            if mount == "/cam0":
                sent.setdefault(digest, int(ns))
        delays, added = [], []
        for line in arrivals.read_text().splitlines():
            ns, path, digest = line.split()
            if path != "/bench/cam0":
                continue
            if digest in sent:
                delays.append((int(ns) - sent[digest]) / 1e6)
            if digest in direct:
                added.append((int(ns) - direct[digest]) / 1e6)
        # Skip the first 6 s: the replayed GOP, and the test camera settling as clients join.
        delays, added = delays[150:], added[150:]
        for name, values in (("latency", delays), ("added", added)):
            quantiles = statistics.quantiles(values, n=100)
            result[f"{name}_p50_ms"] = statistics.median(values)
            result[f"{name}_p99_ms"] = quantiles[98]
            result[f"{name}_max_ms"] = max(values)
        result["matched_frames"] = len(delays)
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cg-fwd-") as tmp:
        work = Path(os.environ.get("KEEP", tmp))
        recording = run(args.cameras, args.seconds, False, work)
        forwarding = run(args.cameras, args.seconds, True, work)
    extra = forwarding["cpu_percent"] - recording["cpu_percent"]
    report = {
        "cameras": args.cameras,
        "seconds": args.seconds,
        "cpu_percent_recording_only": round(recording["cpu_percent"], 2),
        "cpu_percent_recording_and_forwarding": round(forwarding["cpu_percent"], 2),
        "cpu_percent_per_forwarded_camera": round(extra / args.cameras, 2),
        "camera_to_centre_latency_ms": {
            k.removeprefix("latency_").removesuffix("_ms"): round(v, 1)
            for k, v in forwarding.items()
            if k.startswith("latency_")
        },
        "added_over_a_direct_pull_ms": {
            k.removeprefix("added_").removesuffix("_ms"): round(v, 1)
            for k, v in forwarding.items()
            if k.startswith("added_")
        },
        "matched_frames": forwarding["matched_frames"],
        "uss_mib": round(forwarding["uss_mib"], 1),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
