"""SIGKILL of the daemon (a power cut, as far as the files are concerned): at most 1 s lost."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest
from helpers import StartCamera, StartGateway, decode_errors, ffprobe, wait_until, write_config

pytestmark = pytest.mark.camera


def _iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_sigkill_loses_at_most_one_second_and_every_segment_plays(
    tmp_path: Path, cameras: StartCamera, gateway: StartGateway
) -> None:
    server = cameras(["/a:fps=25:gop=25", "/b:fps=25:gop=50:audio=aac"])
    config = write_config(
        tmp_path / "gw.yaml",
        tmp_path / "rec",
        [
            {"id": "cam-a", "url": server.url("/a")},
            {"id": "cam-b", "url": server.url("/b"), "audio": True},
        ],
        storage={"segment_duration": "5s"},
    )
    gw = gateway(config)
    gw.wait_log("camera cam-b: online", 15)
    wait_until(lambda: len(gw.segments("cam-a")) >= 1, 15, "a finished segment")
    # Both cameras well inside a segment, with fragments on disk (however loaded the machine).
    wait_until(
        lambda: (
            {p.parent.parent.name for p in gw.segments(partial=True) if p.stat().st_size > 60_000}
            == {"cam-a", "cam-b"}
        ),
        15,
        "both cameras a second into a segment",
    )
    time.sleep(0.6)
    killed = time.time()
    gw.kill()
    interrupted = gw.segments(partial=True)
    assert {p.parent.parent.name for p in interrupted} == {"cam-a", "cam-b"}

    # Restart: interrupted segments are repaired, renamed and indexed before recording resumes.
    gw2 = gateway(config)
    gw2.wait_log("storage", 15)
    gw2.wait_log("camera cam-a: online", 15)
    assert gw2.log.count("repaired interrupted segment") == 2, gw2.log
    wait_until(lambda: len(gw2.listing()["segments"]) >= 6, 20, "new segments after restart")
    assert gw2.stop() == 0

    listing = gw2.listing()
    for part in interrupted:
        final = part.with_name(part.name.removesuffix(".part"))
        assert final.exists(), f"{final.name} was not kept"
        assert decode_errors(final) == "", f"{final.name} does not play cleanly"
        row = next(s for s in listing["segments"] if Path(s["path"]) == final)
        lost = killed - _iso(row["end"])
        print(f"\n{final.name}: {row['duration']:.2f} s kept, {lost:.2f} s lost at SIGKILL")
        assert lost <= 1.0, f"{lost:.2f} s of video lost"
        video = next(s for s in ffprobe(final)["streams"] if s["codec_type"] == "video")
        assert int(video["nb_read_packets"]) == row["frames"]
    for path in gw2.segments():
        assert decode_errors(path) == "", path.name
