"""Legal holds against a full quota: held segments survive every eviction, holds have a budget
of their own, and placing, refusing and releasing them is journalled."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from helpers import StartGateway, audit_entries, cli, wait_until, write_config


def _sim(name: str) -> dict[str, str]:
    return {"id": name, "url": f"sim://{name}?width=320&height=240&fps=15&gop=1&bitrate=800"}


def _chain(root: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted((root / "audit" / "seals").glob("*.jsonl")):
        out += [json.loads(line) for line in path.read_text().splitlines()]
    return out


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1000):03d}Z"


def test_held_segments_survive_a_full_quota_until_released(
    tmp_path: Path, gateway: StartGateway
) -> None:
    root = tmp_path / "rec"
    config = write_config(
        tmp_path / "gw.yaml",
        root,
        [_sim("hall"), _sim("yard")],
        storage={
            "segment_duration": "1s",
            "quota": 1_000_000,
            "min_free": 0,
            "hold": {"quota": 400_000},
        },
    )
    gw = gateway(config)
    wait_until(lambda: len(gw.segments("hall")) >= 3, 30, "a few segments")
    first = gw.listing("--camera", "hall")["segments"][:2]
    start, end = first[0]["start"], first[-1]["end"]
    placed = cli(
        *("hold", "add", "--config", str(config), "--camera", "hall"),
        *("--start", start, "--end", end, "--case", "PV-7", "--operator", "OPJ Durand"),
        *("--reason", "réquisition du 2 décembre", "--json"),
    )
    assert placed.returncode == 0, placed.stderr
    hold = json.loads(placed.stdout)["hold"]
    held = {str(Path(s["path"]).relative_to(root)) for s in first}

    # The whole quota turns over several times: everything else goes, the hold stays.
    wait_until(
        lambda: sum(1 for e in _chain(root) if e["event"] == "evicted") >= 20, 60, "evictions"
    )
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*.mp4")}
    assert held <= on_disk, "held segments were evicted"
    evicted = {e["path"] for e in _chain(root) if e["event"] == "evicted"}
    assert not held & evicted

    # A hold that does not fit its budget is refused, and recording goes on.
    recent = gw.listing("--camera", "yard")["segments"]
    too_big = cli(
        *("hold", "add", "--config", str(config), "--camera", "yard", "--camera", "hall"),
        *("--start", recent[0]["start"], "--end", recent[-1]["end"], "--case", "PV-8"),
        *("--operator", "OPJ Durand", "--reason", "tout"),
    )
    assert too_big.returncode == 1 and "over storage.hold.quota" in too_big.stderr, too_big.stderr

    def sealed(camera: str) -> int:
        return sum(1 for e in _chain(root) if e["event"] == "segment" and e["camera"] == camera)

    count = sealed("yard")
    wait_until(lambda: sealed("yard") > count + 1, 15, "recording on")

    # An export while retention is evicting every second: its sources are held while it runs.
    out = tmp_path / "package"
    exported = cli(
        *("export", "--config", str(config), "--camera", "yard", "--start", "4s", "--end", "1s"),
        *("--operator", "OPJ Durand", "--reason", "sous pression", "--output", str(out)),
    )
    assert exported.returncode == 0, exported.stderr
    assert cli("verify", str(out), "--config", str(config)).returncode == 0

    released = cli(
        *("hold", "release", hold["id"], "--config", str(config)),
        *("--operator", "OPJ Durand", "--reason", "procédure classée"),
    )
    assert released.returncode == 0, released.stderr
    wait_until(
        lambda: held <= {e["path"] for e in _chain(root) if e["event"] == "evicted"},
        30,
        "the released segments evicted in turn",
    )
    assert gw.stop() == 0
    events = [(e["event"], e.get("case")) for e in audit_entries(root / "audit")]
    assert ("hold_placed", "PV-7") in events and ("hold_released", "PV-7") in events
    assert ("hold_placed", "PV-8") not in events
    released_entry = next(e for e in audit_entries(root / "audit") if e["event"] == "hold_released")
    assert released_entry["reason"] == "procédure classée"


def test_holds_are_listed_and_bad_ones_refused_on_a_stopped_box(
    tmp_path: Path, gateway: StartGateway
) -> None:
    root = tmp_path / "rec"
    config = write_config(
        tmp_path / "gw.yaml", root, [_sim("hall")], storage={"segment_duration": "1s"}
    )
    gw = gateway(config)
    wait_until(lambda: len(gw.segments("hall")) >= 2, 30, "segments")
    assert gw.stop() == 0
    segments = gw.listing()["segments"]
    base = ("hold", "add", "--config", str(config), "--operator", "OPJ", "--reason", "r")
    unknown = cli(*base, "--camera", "nope", "--start", "1h", "--end", "1s", "--case", "C")
    assert unknown.returncode == 1 and "unknown camera 'nope'" in unknown.stderr
    empty = cli(
        *base,
        "--camera",
        "hall",
        "--case",
        "C",
        "--start",
        _iso(time.time() - 7200),
        "--end",
        _iso(time.time() - 3600),
    )
    assert empty.returncode == 1 and "no recording in that range" in empty.stderr
    future = cli(
        *base,
        "--camera",
        "hall",
        "--case",
        "C",
        "--start",
        segments[0]["start"],
        "--end",
        _iso(time.time() + 3600),
    )
    assert future.returncode == 1 and "must not be in the future" in future.stderr
    placed = cli(
        *base,
        "--camera",
        "hall",
        "--case",
        "PV-1",
        "--start",
        segments[0]["start"],
        "--end",
        segments[-1]["end"],
    )
    assert placed.returncode == 0, placed.stderr
    assert "placed hold-" in placed.stdout and "segment(s)" in placed.stdout
    listing = cli("hold", "list", "--config", str(config))
    assert listing.returncode == 0 and "case PV-1" in listing.stdout
    assert "1 hold(s)" in listing.stdout
    entry = next(e for e in audit_entries(root / "audit") if e["event"] == "hold_placed")
    assert "stopped box" in entry["via"]
    unknown_release = cli(
        "hold", "release", "hold-x", "--config", str(config), "--operator", "O", "--reason", "r"
    )
    assert unknown_release.returncode == 1 and "no hold 'hold-x'" in unknown_release.stderr


def test_a_rotated_key_signs_what_follows_and_old_packages_still_verify(
    tmp_path: Path, gateway: StartGateway
) -> None:
    root = tmp_path / "rec"
    config = write_config(
        tmp_path / "gw.yaml", root, [_sim("hall")], storage={"segment_duration": "1s"}
    )
    gw = gateway(config)
    wait_until(lambda: len(gw.segments("hall")) >= 3, 30, "segments")
    assert gw.stop() == 0
    args = (
        "--config",
        str(config),
        "--camera",
        "hall",
        "--start",
        "10m",
        "--end",
        "1s",
        "--operator",
        "OPJ",
        "--reason",
        "r",
    )
    assert cli("export", *args, "--output", str(tmp_path / "before")).returncode == 0
    old = cli("key", "show", "--config", str(config)).stdout
    rotated = cli("key", "rotate", "--config", str(config))
    assert rotated.returncode == 0, rotated.stderr
    new = cli("key", "show", "--config", str(config)).stdout
    assert old != new and "keys used by this box: 2" in new
    assert cli("export", *args, "--output", str(tmp_path / "after")).returncode == 0
    before = json.loads((tmp_path / "before" / "manifest.json").read_text())
    after = json.loads((tmp_path / "after" / "manifest.json").read_text())
    assert before["box"]["key_fingerprint"] != after["box"]["key_fingerprint"]
    for name in ("before", "after"):
        checked = cli("verify", str(tmp_path / name), "--config", str(config))
        assert checked.returncode == 0, checked.stdout
    journal = cli("audit", "verify", "--config", str(config))
    assert journal.returncode == 0, journal.stdout
    assert any(e["event"] == "key_rotated" for e in audit_entries(root / "audit"))
    assert cli("recordings", "verify", "--config", str(config)).returncode == 0
