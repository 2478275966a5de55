"""A fleet of camera-gateway boxes on this machine against the centre's engines, and its costs.

N real gateways (default 50), each with its own site id, client certificate and tiny simulated
cameras, report to one mosquitto (the shipped ``deploy/mosquitto/centre.conf`` and ACL) and,
through a Prometheus agent, to one Prometheus receiving remote writes (see ``fleet_parts.py``).
The operator ``csu-marseille`` watches and commands them. Measured:

- broker messages per second per box at steady state, and bytes per box per day (topic and
  payload, as the operator's subscription receives them);
- metric series per box and samples per second (at the agent's scrape interval);
- the centre → box command round trip (a forward ``stop``, MQTT 5 with a response topic and
  correlation data), p50 and p99;
- how long the centre takes to see a box that lost power (its processes frozen: the connection
  stays open, silent, until the broker's keep-alive runs out and it publishes the box's will);
- every dashboard query (``deploy/grafana/dashboards/*.json``) returning a series for every site;
- ACL isolation across every box (after the gateways are stopped, each box's certificate tries
  another site's topics; nothing may cross).

Usage: python bench/fleet_sim.py [--boxes 50] [--cameras 2] [--window 120] [--keepalive 30]
       [--commands 100] [--out bench/results]
Writes fleet.json and fleet.md to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import free_port
from fleet_parts import LANDLORD, OPERATOR, Box, Part, agent, box_config, broker, start_box
from fleet_parts import centre_prometheus as centre
from fleet_probe import Observer, acl_sweep, dashboard_check, promql, round_trips
from fleet_report import markdown
from pki import Pki
from proctree import ProcessTree

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    parts: list[Part] = []
    boxes: list[Box] = []
    observer: Observer | None = None
    try:
        pki = Pki(work / "pki")
        broker_port, centre_port, agent_port = free_port(), free_port(), free_port()
        parts.append(broker(work, pki, broker_port))
        parts.append(centre(work, centre_port))
        boxes = [
            Box(f"box-{i:03d}", pki.client(f"box-{i:03d}"), free_port(), work / f"b{i:03d}")
            for i in range(1, args.boxes + 1)
        ]
        observer = Observer(pki, pki.client(OPERATOR), broker_port)
        began = time.monotonic()
        for box in boxes:
            start_box(box, box_config(box, pki, broker_port, args.cameras, args.keepalive))
            time.sleep(args.stagger)
        sites = [b.site for b in boxes]
        online = observer.wait_online(sites, timeout=60.0 + 2.0 * args.boxes)
        all_online = time.monotonic() - began
        parts.append(agent(work, agent_port, centre_port, boxes, args.scrape))
        time.sleep(args.settle)
        trees = {
            "boxes": ProcessTree(b.part.process.pid for b in boxes if b.part),
            "broker": ProcessTree([parts[0].process.pid]),
            "prometheus": ProcessTree([parts[1].process.pid, parts[2].process.pid]),
        }
        ticks = {k: t.cpu_ticks() for k, t in trees.items()}
        observer.count(True)
        time.sleep(args.window)
        counted = observer.count(False)
        kinds = dict(observer.kinds)
        used = {k: (t.cpu_ticks() - ticks[k]) / os.sysconf("SC_CLK_TCK") for k, t in trees.items()}
        memory = {k: t.memory() for k, t in trees.items()}
        series = promql(centre_port, 'count by (site) ({job="camera-gateway"})')
        per_box = {r["metric"].get("site", "?"): float(r["value"][1]) for r in series}
        dashboards = dashboard_check(centre_port, sites)
        trips = round_trips(observer, sites, args.commands)
        frozen = boxes[:: max(1, len(boxes) // 3)][:3]  # spread over the start order
        cut = time.monotonic()
        for box in frozen:
            assert box.part is not None
            box.part.freeze()
        seen = observer.wait_offline([b.site for b in frozen], cut, 3.0 * args.keepalive + 10.0)
        for box in boxes:
            if box.part:
                box.part.stop()
        isolation = acl_sweep(pki, broker_port, sites, observer, pki.client(LANDLORD))
    finally:
        if observer is not None:
            observer.close()
        for box in boxes:
            if box.part:
                box.part.stop()
        for part in reversed(parts):
            part.stop()
    messages = {s: counted.get(s, (0, 0)) for s in sites}
    rates = [m / args.window for m, _ in messages.values()]
    day = [b / args.window * 86400 for _, b in messages.values()]
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
        "cores": os.cpu_count(),
        "args": vars(args) | {"out": str(args.out)},
        "boxes": args.boxes,
        "cameras_per_box": args.cameras,
        "online": {"boxes": len(online), "seconds": round(all_online, 1)},
        "messages_per_box_per_s": {
            "median": statistics.median(rates),
            "max": max(rates),
            "target": 1.0,
        },
        "messages_per_box_per_s_by_topic": {
            k: round(v / args.window / len(sites), 4) for k, v in sorted(kinds.items())
        },
        "bytes_per_box_per_day": {"median": statistics.median(day), "max": max(day)},
        "series_per_box": {
            "median": statistics.median(per_box.values()) if per_box else None,
            "max": max(per_box.values()) if per_box else None,
            "boxes_seen": len(per_box),
            "samples_per_s": (statistics.median(per_box.values()) / args.scrape)
            if per_box
            else None,
        },
        "round_trip_ms": {
            "count": len(trips.times),
            "unanswered": trips.unanswered,
            "p50": percentile(trips.times, 0.5),
            "p99": percentile(trips.times, 0.99),
            "max": max(trips.times, default=None),
            "target_p99": 1000.0,
            "answers": trips.answers,
        },
        "power_loss_s": {
            "keepalive": args.keepalive,
            "bound": 1.5 * args.keepalive,
            "seen": seen,
        },
        "dashboards": dashboards,
        "acl": isolation,
        "cpu_percent_of_one_core": {k: round(100.0 * v / args.window, 1) for k, v in used.items()},
        "memory_mib": {
            "boxes_uss_per_box": round(memory["boxes"].uss / len(boxes) / 2**20, 1),
            "broker_rss": round(memory["broker"].rss / 2**20, 1),
            "prometheus_rss": round(memory["prometheus"].rss / 2**20, 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--boxes", type=int, default=50)
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--window", type=float, default=120.0)
    parser.add_argument("--settle", type=float, default=30.0)
    parser.add_argument("--keepalive", type=float, default=30.0)
    parser.add_argument("--scrape", type=float, default=15.0)
    parser.add_argument("--commands", type=int, default=100)
    parser.add_argument("--stagger", type=float, default=0.3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fleet-", dir="/tmp"))
    try:
        result = run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fleet.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    text = markdown(result)
    (args.out / "fleet.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
