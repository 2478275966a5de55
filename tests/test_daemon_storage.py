"""The daemon and its storage tree: a damaged or deleted index never stops recording, and files
are created private to the daemon's group whatever umask started it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from helpers import ROOT, StartGateway, wait_until, write_config


def _sim(name: str) -> dict[str, str]:
    return {"id": name, "url": f"sim://{name}?width=320&height=240&fps=15&gop=1"}


def test_a_damaged_index_at_start_is_set_aside_and_rebuilt_while_recording(
    tmp_path: Path, gateway: StartGateway
) -> None:
    config = write_config(
        tmp_path / "gw.yaml", tmp_path / "rec", [_sim("hall")], storage={"segment_duration": "2s"}
    )
    first = gateway(config)
    wait_until(lambda: len(first.segments("hall")) >= 3, 20, "a few segments")
    assert first.stop() == 0
    recorded = set(first.segments("hall"))
    index = tmp_path / "rec" / "index.sqlite3"
    for leftover in (index.with_name("index.sqlite3-wal"), index.with_name("index.sqlite3-shm")):
        leftover.unlink(missing_ok=True)
    index.write_bytes(b"this is not a database" * 100)

    gw = gateway(config)
    gw.wait_log("rebuilding it from the segment files", 15)
    gw.wait_log("index rebuilt from the files", 15)
    wait_until(lambda: len(gw.segments("hall")) >= len(recorded) + 2, 20, "recording on")
    listed = {Path(s["path"]) for s in gw.listing()["segments"]}
    assert recorded <= listed, "every segment recorded before is indexed again"
    aside = list(index.parent.glob("index.sqlite3.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not"), aside
    assert gw.stop() == 0


def test_an_index_deleted_while_running_is_noticed_and_rebuilt(
    tmp_path: Path, gateway: StartGateway
) -> None:
    config = write_config(
        tmp_path / "gw.yaml", tmp_path / "rec", [_sim("hall")], storage={"segment_duration": "2s"}
    )
    gw = gateway(config)
    wait_until(lambda: len(gw.segments("hall")) >= 2, 20, "a few segments")
    index = tmp_path / "rec" / "index.sqlite3"
    for path in (index, index.with_name("index.sqlite3-wal"), index.with_name("index.sqlite3-shm")):
        path.unlink(missing_ok=True)
    gw.wait_log("index rebuilt from the files", 10)
    count = len(gw.segments("hall"))
    wait_until(lambda: len(gw.segments("hall")) >= count + 2, 20, "recording on")
    assert gw.stop() == 0
    assert {Path(s["path"]) for s in gw.listing()["segments"]} == set(gw.segments("hall")), (
        "the rebuilt index holds every segment, before and after the deletion"
    )


def test_files_are_private_to_the_group_whatever_the_umask(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "gw.yaml", tmp_path / "rec", [_sim("hall")], storage={"segment_duration": "1s"}
    )
    log = (tmp_path / "gw.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        preexec_fn=lambda: os.umask(0),  # noqa: PLW1509 (single-threaded test process)
    )
    try:
        root = tmp_path / "rec"
        wait_until(lambda: len(list(root.rglob("*.mp4"))) >= 2, 20, "segments")
        time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
    created = [p for p in root.rglob("*") if not p.name.startswith(".lock")]
    assert created
    for path in created:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o007 == 0, f"{path.relative_to(root)} is {oct(mode)}: readable by others"


def test_a_camera_folder_replaced_by_a_link_is_never_written_through(
    tmp_path: Path, gateway: StartGateway
) -> None:
    config = write_config(
        tmp_path / "gw.yaml", tmp_path / "rec", [_sim("hall")], storage={"segment_duration": "1s"}
    )
    gw = gateway(config)
    wait_until(lambda: len(gw.segments("hall")) >= 1, 20, "recording")
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "rec" / "hall"
    folder.rename(tmp_path / "hall-moved")
    folder.symlink_to(outside)
    status = wait_until(
        lambda: "symbolic link" in ((s := gw.status()["hall"])["recording_error"] or "") and s,
        10,
        "the link refused",
    )
    assert status["recording"] is False
    time.sleep(2)
    assert list(outside.rglob("*")) == [], "nothing is written through the link"
    assert gw.stop() == 0
