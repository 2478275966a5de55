"""The fleet simulation's report in Markdown (the JSON holds the same figures and more)."""

from __future__ import annotations

from typing import Any


def _n(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def markdown(r: dict[str, Any]) -> str:
    msg, series, trip = r["messages_per_box_per_s"], r["series_per_box"], r["round_trip_ms"]
    power, dash, acl = r["power_loss_s"], r["dashboards"], r["acl"]
    seen = list(power["seen"].values())
    worst = max(seen) if seen else None
    offline_ok = len(seen) > 0 and worst is not None and worst <= power["bound"]
    lines = [
        "# Fleet simulation: boxes against one broker and one Prometheus",
        "",
        f"{r['when']} on {r['host']} ({r['cores']} cores): {r['boxes']} boxes of "
        f"{r['cameras_per_box']} simulated cameras (160x120, 6 fps, 50 kbit/s), all online "
        f"{r['online']['seconds']} s after the first was started; a window of "
        f"{r['args']['window']:g} s at steady state; the agent scraping every "
        f"{r['args']['scrape']:g} s; MQTT keep-alive {power['keepalive']:g} s.",
        "",
        "| figure | measured | target | met |",
        "|---|---|---|---|",
        f"| broker messages per box per second (median / max) | {_n(msg['median'], 3)} / "
        f"{_n(msg['max'], 3)} | ≤ 1 | {_met(msg['max'] <= msg['target'])} |",
        f"| bytes per box per day (median / max) | "
        f"{r['bytes_per_box_per_day']['median'] / 1e6:.1f} MB / "
        f"{r['bytes_per_box_per_day']['max'] / 1e6:.1f} MB | | |",
        f"| metric series per box (median / max, {series['boxes_seen']} boxes seen) | "
        f"{_n(series['median'], 0)} / {_n(series['max'], 0)} | ≤ 300 for 6 cameras | |",
        f"| samples per second per box | {_n(series['samples_per_s'], 1)} | | |",
        f"| command round trip p50 / p99 / max ({trip['count']} answered, "
        f"{trip['unanswered']} unanswered) | {_n(trip['p50'], 1)} / {_n(trip['p99'], 1)} / "
        f"{_n(trip['max'], 1)} ms | p99 ≤ 1000 ms | "
        f"{_met(trip['p99'] is not None and trip['p99'] <= 1000 and not trip['unanswered'])} |",
        f"| power cut seen by the centre ({len(seen)} of {len(power['seen']) or 3} boxes frozen) | "
        f"{', '.join(f'{v:.1f} s' for v in seen) or 'not seen'} | ≤ {power['bound']:g} s "
        f"(1.5 × keep-alive) | {_met(offline_ok)} |",
        f"| dashboard queries with a series for every site | {dash['complete']} of "
        f"{dash['queries']} | all | {_met(dash['queries'] > 0 and not dash['missing'])} |",
        f"| ACL isolation over every box | {acl['foreign_writes_delivered']} foreign writes, "
        f"{acl['foreign_messages_received_by_boxes']} foreign reads, "
        f"{acl['retained_of_other_sites_received']} retained of other sites; "
        f"{acl['own_writes_delivered']} own writes and {acl['operator_commands_received']} "
        f"operator commands through | nothing crosses | {_met(acl['isolated'])} |",
        "",
        "Messages per box per second by topic: "
        + ", ".join(f"`{k}` {v:.3f}" for k, v in r["messages_per_box_per_s_by_topic"].items()),
        "",
        "Answers to the round-trip commands: "
        + "; ".join(f"{k} ({v})" for k, v in trip["answers"].items()),
        "",
    ]
    if dash["missing"]:
        lines += ["Queries missing sites:", ""]
        lines += [f"- {k}: {v} sites without a series" for k, v in dash["missing"].items()]
        lines.append("")
    cpu, mem = r["cpu_percent_of_one_core"], r["memory_mib"]
    lines += [
        f"Cost on this machine over the window: the boxes {cpu['boxes']} % of one core in all "
        f"({cpu['boxes'] / r['boxes']:.2f} % each), USS {mem['boxes_uss_per_box']} MiB per box; "
        f"the broker {cpu['broker']} % (RSS {mem['broker_rss']} MiB); the centre's Prometheus "
        f"and the agent {cpu['prometheus']} % (RSS {mem['prometheus_rss']} MiB).",
        "",
        "Reproduce: `.venv/bin/python bench/fleet_sim.py "
        + " ".join(
            f"--{k} {v:g}" if isinstance(v, float) else f"--{k} {v}"
            for k, v in r["args"].items()
            if k != "out"
        )
        + "`",
        "",
    ]
    return "\n".join(lines)
