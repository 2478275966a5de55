"""The fleet simulation, small: three real gateways against the shipped centre broker (its
certificate identities and ACL) and a Prometheus receiving remote writes. The 50-box run and
its figures are in ``bench/results/fleet.md``; this keeps the simulation and what it checks
working."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEEPALIVE = 5.0
BROKER_LAG = 7.0
"""Seconds past 1.5 × keep-alive a broker may take to notice: mosquitto 2.0 checks keep-alives
in its main loop, every few seconds, not on a timer per client (measured here: 2.5-6 s late)."""


def test_a_small_fleet_is_watched_commanded_and_isolated(tmp_path: Path) -> None:
    cmd = [
        sys.executable, "bench/fleet_sim.py", "--boxes", "3", "--window", "15",
        "--settle", "12", "--keepalive", str(KEEPALIVE), "--commands", "20",
        "--scrape", "2", "--out", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads((tmp_path / "fleet.json").read_text())
    assert r["online"]["boxes"] == 3
    assert 0 < r["messages_per_box_per_s"]["max"] <= 1.0
    assert r["series_per_box"]["boxes_seen"] == 3
    assert r["series_per_box"]["max"] <= 300
    trips = r["round_trip_ms"]
    assert trips["unanswered"] == 0 and trips["count"] == 20
    assert trips["p99"] < 1000
    # every answer names what became of the command (no uplink in the simulation)
    assert all(k.startswith("ok=") and len(k) > 10 for k in trips["answers"])
    seen = r["power_loss_s"]["seen"]
    assert len(seen) == 3, "a frozen box was never reported offline"
    assert all(0.5 * KEEPALIVE <= s <= 1.5 * KEEPALIVE + BROKER_LAG for s in seen.values())
    acl = r["acl"]
    assert acl["isolated"], acl
    assert acl["own_writes_delivered"] == 3 and acl["operator_commands_received"] == 3
    dashboards = r["dashboards"]
    if (ROOT / "deploy" / "grafana").exists():
        assert dashboards["queries"] > 0
        assert not dashboards["missing"], dashboards["missing"]
    assert (tmp_path / "fleet.md").read_text().startswith("# Fleet simulation")
