"""What starting a camera worker costs: the fork server's start, each spawn, and the time to the
worker's first status report, over N spawns (sim:// cameras, nothing recorded).

    .venv/bin/python bench/worker_start.py [--spawns 20]

Prints the median and the range of each, in milliseconds, and the worker's unique memory (USS)
once it reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.config import parse_config  # noqa: E402
from gateway.daemon.workers.channel import Channel, channel_pair  # noqa: E402
from gateway.daemon.workers.forkserver import ForkServer  # noqa: E402
from gateway.daemon.workers.messages import Status, WorkerSettings, decode_up  # noqa: E402

WORKER = "gateway.daemon.workers.process:run_worker"


def uss_mib(pid: int) -> float:
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1])
    return total / 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spawns", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        config = parse_config(
            {
                "site_id": "bench",
                "storage": {"path": work, "quota": "1GiB"},
                "cameras": [
                    {"id": "cam", "url": "sim://cam?width=320&height=240", "record": False}
                ],
            },
            base_dir=Path(work),
        )
        camera = config.cameras[0].model_copy(update={"forward": "off"})
        settings = WorkerSettings(
            site_id="bench",
            storage_root=Path(work),
            segment_duration=10.0,
            segment_max_bytes=2**20,
            memory_max=512 * 2**20,
            max_bitrate=50e6,
            forwarded=False,
        )
        server = ForkServer()
        started = time.perf_counter()
        server.start()
        server_ms = (time.perf_counter() - started) * 1000
        spawn_ms, first_ms, uss = [], [], []
        try:
            for _ in range(args.spawns):
                ours, theirs = channel_pair()
                begun = time.perf_counter()
                spawned = server.spawn(
                    "gateway.daemon.workers.process:run_worker", theirs, camera, settings
                )
                spawn_ms.append((time.perf_counter() - begun) * 1000)
                theirs.close()
                channel = Channel(ours)
                while True:
                    data = channel.recv(5.0)
                    assert data is not None, "no report within 5 s"
                    if isinstance(decode_up(data), Status):
                        break
                first_ms.append((time.perf_counter() - begun) * 1000)
                uss.append(uss_mib(spawned.pid))
                channel.close()  # the worker sees its supervisor gone and ends
                server.exits()
        finally:
            server.close()
    for name, values in (("spawn", spawn_ms), ("first status report", first_ms)):
        print(
            f"{name}: median {statistics.median(values):.1f} ms "
            f"({min(values):.1f}-{max(values):.1f}) over {len(values)}"
        )
    print(f"fork server start (imports): {server_ms:.0f} ms")
    print(f"worker USS at its first report: median {statistics.median(uss):.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
