"""The benchmark's results as a page: a table of every point and a plot (bench/run.py)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any


def page(results: dict[str, Any], table: str) -> str:
    """latest.md: what was measured, how, and the table."""
    gateway, baseline = results["gateway"], results.get("baseline")
    systems = [
        f"**gateway** (this tree at {gateway['commit'][:7]}"
        f"{', with changes not committed' if gateway['modified'] else ''})",
        *(
            [f"**{baseline['name']}** (`{baseline['ref']}`, commit {baseline['commit']})"]
            if baseline
            else []
        ),
        "**ffmpeg**",
    ]
    search = results.get("search", True)
    return (
        f"# Benchmark: {results['source']}\n\n{results['machine']['description']}; "
        f"{results['windows']} windows of {results['window_seconds']:g} s per point "
        "(median, min–max).\n\n"
        f"Systems: {', '.join(systems)}. CPU and memory cover each system's whole process "
        "tree; USS is the memory a process alone holds. USS per worker: what the gateway's "
        "processes hold but the one started (its supervisor) and those with children (its fork "
        "server), divided by the number of cameras; in parentheses the USS of the supervisor "
        "and of the fork server.\n\n"
        f"Largest number of cameras with zero loss (gateway"
        f"{'' if search else ', among the points measured'}): "
        f"**{results['largest_lossless_cameras']}**.\n\n{table}"
    )


def _systems(results: dict[str, Any]) -> list[str]:
    """The systems of a run, in the order they were measured."""
    return list(dict.fromkeys(p["system"] for p in results["points"]))


def _median(point: dict[str, Any] | None, key: str) -> float | None:
    value = point.get(key) if point else None
    return value["median"] if value else None


def _ratio(point: dict[str, Any], other: dict[str, Any] | None) -> str:
    mine, theirs = _median(point, "cpu_percent"), _median(other, "cpu_percent")
    return f"{mine / theirs:.2f}" if mine is not None and theirs else ""


def _mib(value: float | None, digits: int = 0) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    """The table: one row per point and system. The CPU ratios are the gateway's and the
    baseline's to ffmpeg, and the gateway's to the baseline, at the same number of cameras."""
    baseline = (results.get("baseline") or {}).get("name")
    columns = [
        ("cameras", "---:"),
        ("system", "---"),
        ("CPU % of one core (median, min–max)", "---"),
        ("CPU per camera", "---:"),
        ("ratio to ffmpeg", "---:"),
        *([("ratio to baseline", "---:")] if baseline else []),
        ("USS MiB", "---:"),
        ("USS per camera MiB", "---:"),
        ("USS per worker MiB (supervisor + fork server)", "---:"),
        ("RSS MiB", "---:"),
        ("PSS MiB", "---:"),
        ("processes", "---:"),
        ("not recorded / not forwarded / sent", "---"),
        ("camera→centre latency p50 / p99 ms", "---"),
        ("first segment s", "---:"),
        ("disk Mbit/s", "---:"),
        ("cameras + centre CPU %", "---:"),
    ]
    rows = [
        "| " + " | ".join(c for c, _ in columns) + " |",
        "| " + " | ".join(a for _, a in columns) + " |",
    ]
    by_n: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    for point in results["points"]:
        by_n[point["cameras"]][point["system"]] = point
    for n in sorted(by_n):
        ffmpeg = by_n[n].get("ffmpeg")
        for name in _systems(results):
            p = by_n[n].get(name)
            if p is None:
                continue
            cpu = p["cpu_percent"]
            worker = _median(p, "uss_mib_per_worker")
            cells = [
                str(n),
                f"{name} (stopped: see below)" if p.get("failure") else name,
                f"{cpu['median']:.1f} ({cpu['min']:.1f}–{cpu['max']:.1f})",
                f"{p['cpu_percent_per_camera']['median']:.2f}",
                _ratio(p, ffmpeg) if name != "ffmpeg" else "",
                *(
                    [_ratio(p, by_n[n].get(baseline)) if name == "gateway" else ""]
                    if baseline
                    else []
                ),
                _mib(_median(p, "uss_mib")),
                _mib(_median(p, "uss_mib_per_camera"), 1),
                (
                    f"{worker:.1f} ({_median(p, 'uss_started_mib'):.0f} + "
                    f"{_median(p, 'uss_fork_server_mib'):.0f})"
                    if worker is not None
                    else ""
                ),
                _mib(_median(p, "rss_mib")),
                _mib(_median(p, "pss_mib")),
                _mib(_median(p, "processes")),
                f"{p['frames_not_recorded']} / {p['frames_not_forwarded']} / {p['frames_sent']}",
                f"{p['latency_ms']['p50']} / {p['latency_ms']['p99']}",
                str(p["time_to_first_segment_s"]),
                f"{p['disk_mbit_s']['median']:.1f}",
                f"{p['harness_cpu_percent']['median']:.0f}",
            ]
            rows.append("| " + " | ".join(cells) + " |")
    failures = [
        f"- {p['system']} at {p['cameras']} cameras: {p['failure']}"
        for p in results["points"]
        if p.get("failure")
    ]
    if failures:
        rows += ["", "Stopped before the end of the point:", "", *failures]
    return "\n".join(rows) + "\n"


_STYLES = {"gateway": "o-", "ffmpeg": "s--"}


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cpu_ax, mem_ax, loss_ax) = plt.subplots(1, 3, figsize=(15, 4))
    for name in _systems(results):
        style = _STYLES.get(name, "^-.")
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
        memory = [(p["cameras"], _median(p, "uss_mib_per_camera")) for p in points]
        memory = [(n, m) for n, m in memory if m is not None]
        if memory:
            mem_ax.plot([n for n, _ in memory], [m for _, m in memory], style, label=name)
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
    mem_ax.set(xscale="log", xlabel="cameras", ylabel="USS per camera (MiB)")
    mem_ax.set_title("Memory per camera (unique set size)")
    loss_ax.set(xscale="log", xlabel="cameras", ylabel="frames lost (%)")
    loss_ax.set_title("Frames not recorded or not forwarded")
    for ax in (cpu_ax, mem_ax, loss_ax):
        ax.set_xticks(counts, [str(n) for n in counts])
        ax.minorticks_off()
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle(results["machine"]["description"], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
