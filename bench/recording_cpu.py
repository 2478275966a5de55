"""CPU cost of recording N real RTSP cameras (1080p25 H.264 ~4 Mbit/s, 2 s GOP).

The cameras are the GStreamer RTSP server replaying a pre-encoded clip (no encoding cost), one
mount per camera. The daemon records all of them; its user+system CPU is read from /proc over the
measurement window. Usage: python bench/recording_cpu.py [--cameras 4] [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, TICKS, cpu_seconds, free_port, make_clip, start_ready
from proctree import ProcessTree


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    clip = make_clip("1080p", 120)
    work = Path(tempfile.mkdtemp(prefix="cg-bench-"))
    port = free_port()
    server = start_ready(
        ["/usr/bin/python3", str(ROOT / "tests/support/rtsp_camera.py"), "--port", str(port)]
        + [a for i in range(args.cameras) for a in ("--mount", f"/cam{i}:clip={clip}:shared=0")],
        work / "cameras.log",
    )
    config = work / "gw.yaml"
    cameras = "\n".join(
        f"  - {{id: cam{i}, url: 'rtsp://127.0.0.1:{port}/cam{i}'}}" for i in range(args.cameras)
    )
    config.write_text(
        f"site_id: bench\nstorage: {{path: {work}/rec, quota: 20GiB, min_free: 1GiB, "
        f"segment_duration: 10s}}\ncameras:\n{cameras}\n"
        f"metrics: {{listen: 127.0.0.1:{free_port()}}}\n"
    )
    log = (work / "gateway.log").open("w")
    gateway = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        time.sleep(8)  # connect and settle
        tree = ProcessTree([gateway.pid])  # the supervisor, its fork server and its workers
        g0, s0, t0 = tree.cpu_ticks() / TICKS, cpu_seconds(server.pid), time.monotonic()
        if os.environ.get("THREADS"):
            subprocess.run(
                [sys.executable, os.environ["THREADS"], str(gateway.pid), str(args.seconds)]
            )
        elif os.environ.get("PROFILE"):
            subprocess.run(
                [
                    "py-spy",
                    "record",
                    "-p",
                    str(gateway.pid),
                    "-d",
                    str(int(args.seconds)),
                    "-o",
                    os.environ["PROFILE"],
                    "-f",
                    "raw",
                    "--nonblocking",
                ],
                check=False,
                capture_output=True,
            )
        else:
            time.sleep(args.seconds)
        g1, s1, t1 = tree.cpu_ticks() / TICKS, cpu_seconds(server.pid), time.monotonic()
        rss = tree.memory().uss
    finally:
        gateway.terminate()
        gateway.wait(10)
        server.terminate()
        server.wait(10)
    elapsed = t1 - t0
    written = sum(p.stat().st_size for p in (work / "rec").rglob("*.mp4"))
    result = {
        "cameras": args.cameras,
        "seconds": round(elapsed, 1),
        "gateway_cpu_percent_of_one_core": round(100 * (g1 - g0) / elapsed, 2),
        "gateway_cpu_percent_per_camera": round(100 * (g1 - g0) / elapsed / args.cameras, 2),
        "camera_server_cpu_percent": round(100 * (s1 - s0) / elapsed, 2),
        "gateway_uss_mib": round(rss / 2**20, 1),
        "recorded_mib": round(written / 2**20, 1),
    }
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
