"""The benchmark's own instruments: its light centre, departure times from keyframes, the
CPU and memory of a process tree, and the baseline's worktree.

The benchmark's figures are only as good as these: a centre that missed or misnamed pictures
would count loss that is not there, or hide loss that is; a tree reading that missed a worker
would make a daemon of several processes look cheaper than it is.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
from helpers import ROOT, free_port

sys.path.insert(0, str(ROOT / "tests" / "support"))
from digest import avcc_digest

sys.path.insert(0, str(ROOT / "bench"))
from baseline import worktree
from common import TICKS, ClipFrame, clip_frames, expand_departures
from proctree import ProcessTree


def _clip(path: Path) -> Path:
    """3 s of H.264 with large pictures (split into FU-A fragments) and 1 s GOPs."""
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
            "-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "3M", "-g", "25",
            "-bf", "0", "-pix_fmt", "yuv420p", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


def test_light_centre_logs_every_picture_pushed_by_its_identity(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "clip.mp4")
    sent = [f.digest for f in clip_frames(clip)]
    assert len(sent) == 75 and all(sent)
    arrivals = tmp_path / "arrivals.log"
    port = free_port()
    centre = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench/centre.py"),
            "--port",
            str(port),
            "--arrivals",
            str(arrivals),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert centre.stdout is not None and centre.stdout.readline().startswith("READY")
        push = subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-re",
                "-i",
                str(clip),
                "-c",
                "copy",
                "-f",
                "rtsp",
                "-rtsp_transport",
                "tcp",
                f"rtsp://127.0.0.1:{port}/site/cam7",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert push.returncode == 0, push.stderr
    finally:
        centre.terminate()
        centre.wait(10)
    lines = [line.split() for line in arrivals.read_text().splitlines()]
    assert {path for _, path, _ in lines} == {"/site/cam7"}
    assert [digest for _, _, digest in lines] == sent  # each picture once, in order
    times = [int(ns) for ns, _, _ in lines]
    assert times == sorted(times)
    # Paced by -re: arrival times follow the pictures' own timing, not a burst at the end.
    assert 2.5 < (times[-1] - times[0]) / 1e9 < 4.0


def test_departures_of_every_picture_follow_from_its_keyframe() -> None:
    frames = [ClipFrame(i / 25, f"d{i}", i % 50 == 0) for i in range(120)]
    keyframes = [(1_000_000_000, "/cam0", "d50"), (5_000_000_000, "/cam1", "d0")]
    out = expand_departures(keyframes, frames)
    # Frames 50..99 after the first keyframe (up to the next one), frames 0..49 after the second.
    assert [d for _, m, d in out if m == "/cam0"] == [f"d{i}" for i in range(50, 100)]
    assert [d for _, m, d in out if m == "/cam1"] == [f"d{i}" for i in range(50)]
    assert out[1][0] == 1_000_000_000 + 40_000_000
    assert out[-1][0] == 5_000_000_000 + 49 * 40_000_000
    # A keyframe the clip does not hold (another clip, a corrupted log) yields nothing.
    assert expand_departures([(0, "/cam0", "unknown")], frames) == []


def test_clip_identities_match_what_a_recording_of_it_holds(tmp_path: Path) -> None:
    """The identity survives stream copy: a copy of the clip reads back the same pictures."""
    clip = _clip(tmp_path / "clip.mp4")
    copy = tmp_path / "copy.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(clip),
            "-c",
            "copy",
            "-f",
            "mp4",
            "-movflags",
            "frag_keyframe+empty_moov",
            str(copy),
        ],
        check=True,
    )
    with av.open(str(copy)) as container:
        copied = [avcc_digest(bytes(p)) for p in container.demux(video=0) if p.size]
    assert copied == [f.digest for f in clip_frames(clip)]


_MIB = 2**20

# A supervisor forking workers that each write 24 MiB of their own, and on request a short-lived
# child that burns 0.6 s of CPU and exits (reaped at once, so nothing of it is left in /proc).
_FORKING_PARENT = """
import os, sys, time
ready_r, ready_w = os.pipe()
workers = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        memory = b"\\x01" * (24 << 20)
        os.write(ready_w, b"x")
        time.sleep(60)
        os._exit(0)
    workers.append(pid)
for _ in workers:
    os.read(ready_r, 1)
print("READY", flush=True)
sys.stdin.readline()
burner = os.fork()
if burner == 0:
    while time.process_time() < 0.6:
        pass
    os._exit(0)
print(burner, flush=True)
os.waitpid(burner, 0)
print("REAPED", flush=True)
sys.stdin.readline()
for pid in workers:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
"""


def test_process_tree_holds_every_descendant_and_keeps_the_cpu_of_one_that_exited() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _FORKING_PARENT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its workers share its process group: one kill ends them all
    )
    assert parent.stdin is not None and parent.stdout is not None
    try:
        assert parent.stdout.readline() == "READY\n"
        tree = ProcessTree([parent.pid])
        memory = tree.memory()
        assert memory.processes == 4 and memory.workers == 3
        # Each worker's 24 MiB are its own: counted in its USS, not in the supervisor's.
        assert memory.uss_workers >= 3 * 24 * _MIB
        assert memory.uss_started < 24 * _MIB
        assert memory.uss_parents == 0
        assert memory.uss <= memory.pss <= memory.rss

        before = tree.cpu_ticks()
        parent.stdin.write("burn\n")
        parent.stdin.flush()
        burner = int(parent.stdout.readline())
        seen: set[int] = set()
        deadline = time.monotonic() + 30
        while os.path.exists(f"/proc/{burner}") and time.monotonic() < deadline:
            seen.update(tree.members())
            tree.cpu_ticks()
            time.sleep(0.05)
        assert parent.stdout.readline() == "REAPED\n"
        assert burner in seen
        after = tree.cpu_ticks()
        assert burner not in tree.members()
        # Its 0.6 s are kept, but for what it spent after the last reading (about 50 ms).
        assert (after - before) / TICKS >= 0.5
    finally:
        os.killpg(parent.pid, 9)
        parent.wait(10)


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_a_baseline_worktree_runs_the_gateway_of_its_commit_and_is_removed() -> None:
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    with worktree("HEAD") as baseline:
        assert baseline.commit == head and baseline.name == f"gateway@{head[:7]}"
        version = subprocess.run(
            [sys.executable, "-m", "gateway", "--version"],
            capture_output=True,
            text=True,
            env=baseline.env(),
            cwd=baseline.path,
        )
        assert version.returncode == 0 and version.stdout.startswith("camera-gateway ")
        path = baseline.path
        assert path.is_dir()
    assert not path.exists()
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "list", "--porcelain"], capture_output=True, text=True
    ).stdout
    assert str(path) not in listed

    # Removed also when what runs inside fails.
    with pytest.raises(RuntimeError, match="inside"), worktree("HEAD") as baseline:
        path = baseline.path
        raise RuntimeError("inside")
    assert not path.exists()
    with pytest.raises(RuntimeError, match="not a commit"), worktree("no-such-ref-here"):
        pass
