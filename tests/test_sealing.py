"""Sealing at record time, checked from outside: sha256sum against the index and the chain,
``recordings verify`` against altered, truncated, missing and evicted segments, and the audit
journal the daemon keeps."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from helpers import StartGateway, audit_entries, cli, wait_until, write_config


def _sim(name: str) -> dict[str, str]:
    return {"id": name, "url": f"sim://{name}?width=320&height=240&fps=15&gop=1"}


def sha256sum(path: Path) -> str:
    out = subprocess.run(["sha256sum", str(path)], check=True, capture_output=True, text=True)
    return out.stdout.split()[0]


def index_rows(root: Path) -> list[tuple[str, str | None, int | None]]:
    db = sqlite3.connect(f"file:{root / 'index.sqlite3'}?mode=ro", uri=True)
    try:
        return list(db.execute("SELECT path, sha256, seal_seq FROM segments ORDER BY start"))
    finally:
        db.close()


def chain(root: Path, camera: str) -> list[dict[str, Any]]:
    entries = []
    for path in sorted((root / "audit" / "seals").glob(f"{camera}-*.jsonl")):
        entries += [json.loads(line) for line in path.read_text().splitlines()]
    return entries


def verify(config: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli("recordings", "verify", "--config", str(config), "--json", *args)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_each_segment_is_sealed_with_the_hash_of_its_bytes(
    tmp_path: Path, gateway: StartGateway
) -> None:
    root = tmp_path / "rec"
    config = write_config(
        tmp_path / "gw.yaml",
        root,
        [_sim("hall"), _sim("stairs")],
        storage={"segment_duration": "2s"},
    )
    gw = gateway(config)
    wait_until(lambda: len(gw.segments("hall")) >= 3, 30, "segments")
    assert gw.stop() == 0

    rows = index_rows(root)
    assert rows and all(seq is not None for _, _, seq in rows), rows
    for path, digest, _ in rows:
        assert digest == sha256sum(root / path), f"{path}: the hash taken while writing is wrong"
    hall = [e for e in chain(root, "hall") if e["event"] == "segment"]
    assert [e["seq"] for e in hall] == list(range(1, len(hall) + 1))
    assert {e["path"]: e["sha256"] for e in hall} == {p: d for p, d, _ in rows if "hall/" in p}
    assert all(e["clock_synced"] in (True, False, None) and e["sig"] for e in hall)

    code, report = verify(config)
    assert code == 0, report
    assert report["counts"] == {"ok": len(rows)}

    events = [e["event"] for e in audit_entries(root / "audit")]
    assert events[:2] == ["key_created", "daemon_started"] and "daemon_stopped" in events
    assert events[-1] == "recordings_verified", "verifications are journalled too"
    started = audit_entries(root / "audit")[1]
    assert len(started["config_sha256"]) == 64
    audit = cli("audit", "verify", "--config", str(config))
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "journal verified" in audit.stdout


def test_recordings_verify_tells_altered_truncated_missing_and_evicted_apart(
    tmp_path: Path, gateway: StartGateway
) -> None:
    root = tmp_path / "rec"
    config = write_config(
        tmp_path / "gw.yaml", root, [_sim("hall")], storage={"segment_duration": "1s"}
    )
    gw = gateway(config)
    wait_until(lambda: len(gw.segments("hall")) >= 6, 30, "segments")
    assert gw.stop() == 0
    paths = [root / p for p, _, _ in index_rows(root)]
    altered, truncated, missing = paths[1], paths[2], paths[3]
    data = bytearray(altered.read_bytes())
    data[len(data) // 2] ^= 0x01
    altered.write_bytes(bytes(data))
    truncated.write_bytes(truncated.read_bytes()[:-100])
    missing.unlink()

    code, report = verify(config)
    assert code == 1
    status = {s["path"]: s["status"] for s in report["segments"]}
    rel = {p: str(p.relative_to(root)) for p in paths}
    assert status[rel[altered]] == "altered"
    assert status[rel[truncated]] == "truncated"
    assert status[rel[missing]] == "missing"
    assert status[rel[paths[0]]] == "ok"
    human = cli("recordings", "verify", "--config", str(config))
    assert human.returncode == 1 and "NOT VERIFIED: 3 segment(s) fail" in human.stdout
    assert f"missing   {rel[missing]}" in human.stdout


def test_evicted_segments_are_reported_evicted_not_missing(
    tmp_path: Path, gateway: StartGateway
) -> None:
    root = tmp_path / "rec"
    config = write_config(
        tmp_path / "gw.yaml",
        root,
        [_sim("hall")],
        storage={"segment_duration": "1s", "quota": 400_000, "min_free": 0},
    )
    gw = gateway(config)
    wait_until(lambda: any(e["event"] == "evicted" for e in chain(root, "hall")), 40, "an eviction")
    assert gw.stop() == 0
    evicted = [e for e in chain(root, "hall") if e["event"] == "evicted"]
    assert evicted[0]["reason"] == "quota" and len(evicted[0]["sha256"]) == 64
    code, report = verify(config)
    assert code == 0, report
    assert report["counts"]["evicted"] == len(evicted) and report["counts"]["ok"] >= 1


def test_a_chain_entry_removed_is_detected(tmp_path: Path, gateway: StartGateway) -> None:
    root = tmp_path / "rec"
    config = write_config(
        tmp_path / "gw.yaml", root, [_sim("hall")], storage={"segment_duration": "1s"}
    )
    gw = gateway(config)
    wait_until(lambda: len(chain(root, "hall")) >= 4, 30, "chain entries")
    assert gw.stop() == 0
    (path,) = (root / "audit" / "seals").glob("hall-*.jsonl")
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    code, report = verify(config)
    assert code == 1
    assert any("missing or moved" in p for p in report["chains"]["hall"]["problems"])


def test_without_a_usable_key_recording_goes_on_and_sealing_catches_up(
    tmp_path: Path, gateway: StartGateway
) -> None:
    root = tmp_path / "rec"
    config = write_config(
        tmp_path / "gw.yaml", root, [_sim("hall")], storage={"segment_duration": "1s"}
    )
    (root / "keys").mkdir(parents=True)
    (root / "keys" / "signing.pem").write_text("not a key\n")
    gw = gateway(config)
    gw.wait_log("exports and sealing are unavailable", 15)
    wait_until(lambda: len(gw.segments("hall")) >= 3, 30, "recording without a key")
    gw.wait_log("segments not sealed", 10)
    assert "camera_gateway_seal_error 1.0" in gw.metrics()
    status = cli("status", "--config", str(config))
    assert "! sealing: segments not sealed" in status.stdout, status.stdout
    assert gw.stop() == 0
    assert all(seq is None for _, _, seq in index_rows(root))

    (root / "keys" / "signing.pem").unlink()
    again = gateway(config)
    again.wait_log("signing key", 15)
    wait_until(lambda: all(seq is not None for _, _, seq in index_rows(root)), 20, "sealed late")
    assert again.stop() == 0
    code, report = verify(config)
    assert code == 0, report


def test_a_segment_repaired_after_a_crash_is_sealed_at_the_next_start_as_recovered(
    tmp_path: Path, gateway: StartGateway
) -> None:
    root = tmp_path / "rec"
    config = write_config(
        tmp_path / "gw.yaml", root, [_sim("hall")], storage={"segment_duration": "30s"}
    )
    gw = gateway(config)
    wait_until(lambda: gw.segments("hall", partial=True), 20, "a segment being written")
    time.sleep(2.5)  # a few fragments on disk
    gw.kill()
    again = gateway(config)
    again.wait_log("interrupted segment(s) repaired", 15)
    wait_until(
        lambda: any("recovered" in e.get("flags", []) for e in chain(root, "hall")),
        15,
        "the repaired segment sealed",
    )
    assert again.stop() == 0
    recovered = next(e for e in chain(root, "hall") if "recovered" in e.get("flags", []))
    assert recovered["sha256"] == sha256sum(root / recovered["path"])
    code, report = verify(config)
    assert code == 0, report


def test_audit_show_prints_the_journal_and_reads_the_old_forward_journal(
    tmp_path: Path, gateway: StartGateway
) -> None:
    root = tmp_path / "rec"
    (root / "audit").mkdir(parents=True)
    (root / "audit" / "forward-sessions.jsonl").write_text(
        '{"time": "2026-11-30T10:00:00.000Z", "event": "forward_started", "session": "s1", '
        '"camera": "hall"}\n'
    )
    config = write_config(tmp_path / "gw.yaml", root, [_sim("hall")])
    gw = gateway(config)
    gw.wait_log("was interrupted", 15)  # the old journal's open session is closed at start
    assert gw.stop() == 0
    shown = cli("audit", "show", "--config", str(config))
    assert shown.returncode == 0
    lines = shown.stdout.splitlines()
    assert "forward_started" in lines[0] and "session=s1" in lines[0]
    assert any("forward_stopped" in line and "stop_reason=interrupted" in line for line in lines)
    as_json = cli("audit", "show", "--config", str(config), "--json", "--since", "1h")
    events = [json.loads(line)["event"] for line in as_json.stdout.splitlines()]
    assert "forward_started" not in events and "daemon_started" in events
