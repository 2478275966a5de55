"""Exporting footage as evidence, end to end: two real RTSP cameras recorded by the daemon, a
package exported while it records, checked with openssl, sha256sum, ffprobe and ffmpeg exactly as
VERIFY.txt tells an officer to, then tampered with in every way."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import pytest
from helpers import (
    ROOT,
    CameraServer,
    GatewayProcess,
    StartCamera,
    StartGateway,
    audit_entries,
    cli,
    decode_errors,
    ffprobe,
    tmpfs,
    wait_until,
    write_config,
)

FPS = 25


@dataclass
class Box:
    config: Path
    root: Path
    gateway: GatewayProcess
    started: float
    work: Path

    def export(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return cli("export", "--config", str(self.config), *args, **kw)


def iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    work = tmp_path_factory.mktemp("export")
    camera = CameraServer(
        [f"/hall:fps={FPS}:gop={FPS}:width=704:height=576", f"/stairs:fps={FPS}:gop={FPS}"], work
    ).start()
    gw: GatewayProcess | None = None
    try:
        root = work / "rec"
        config = write_config(
            work / "gw.yaml",
            root,
            [
                {"id": "hall", "url": camera.url("/hall")},
                {"id": "stairs", "url": camera.url("/stairs")},
            ],
            storage={"segment_duration": "4s"},
        )
        gw = GatewayProcess(config, work).start()
        gw.wait_log("camera stairs: online", 20)
        started = time.time()
        wait_until(
            lambda: len(gw.segments("hall")) >= 4 and len(gw.segments("stairs")) >= 4,
            60,
            "16 s of both cameras",
        )
        yield Box(config, root, gw, started, work)
    finally:
        if gw is not None:
            gw.ensure_stopped()
        camera.stop()


@pytest.fixture(scope="module")
def package(box: Box) -> Path:
    """Exported through the running daemon, 6 s of both cameras well inside what is recorded."""
    listing = box.gateway.listing()["segments"]
    first = max(
        min(_t(s["start"]) for s in listing if s["camera"] == c) for c in ("hall", "stairs")
    )
    output = box.work / "PV-2026-0042"
    result = box.export(
        *("--camera", "hall", "--camera", "stairs"),
        *("--start", iso(first + 3.3), "--end", iso(first + 9.3)),
        *("--output", str(output), "--operator", "OPJ Martin, commissariat Nord"),
        *("--reason", "plainte 2026/118: dégradation du hall", "--case", "PV-2026-0042"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "held as hold-" in result.stdout
    return output


def _t(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run(*cmd: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=120)


# -- the package as an officer checks it ------------------------------------------------------


def test_the_package_checks_out_with_openssl_and_sha256sum_as_verify_txt_says(
    box: Box, package: Path
) -> None:
    names = sorted(p.name for p in package.iterdir())
    assert names == sorted(
        [
            "hall.mp4",
            "stairs.mp4",
            "manifest.json",
            "manifest.json.sig",
            "SHA256SUMS",
            "SHA256SUMS.sig",
            "signer.pub.pem",
            "VERIFY.txt",
        ]
    )
    howto = (package / "VERIFY.txt").read_text()
    commands = [line.strip() for line in howto.splitlines() if line.startswith("   openssl")]
    commands += [line.strip() for line in howto.splitlines() if line.startswith("   sha256sum")]
    assert len(commands) == 4, howto
    for command in commands:
        out = run("sh", "-c", command, cwd=package)
        assert out.returncode == 0, (command, out.stdout, out.stderr)
        if "pkeyutl" in command:
            assert "Signature Verified Successfully" in out.stdout
        if "sha256sum -c" in command:
            assert out.stdout.count(": OK") == 5 and "FAILED" not in out.stdout
        if "outform der" in command:
            fingerprint = out.stdout.split()[0]
            assert fingerprint in howto
    shown = cli("key", "show", "--config", str(box.config))
    assert fingerprint in shown.stdout, "the box shows the same key the package was signed with"
    manifest = json.loads((package / "manifest.json").read_text())
    assert manifest["box"]["key_fingerprint"] == fingerprint


def test_an_export_through_the_daemon_runs_beside_it_not_in_it(box: Box, package: Path) -> None:
    """The export ran in a child: the supervisor never loaded FFmpeg's libraries."""
    assert box.gateway.proc is not None
    maps = Path(f"/proc/{box.gateway.proc.pid}/maps").read_text()
    assert "libavformat" not in maps


def test_the_manifest_says_who_why_what_and_where_it_comes_from(box: Box, package: Path) -> None:
    manifest = json.loads((package / "manifest.json").read_text())
    assert manifest["operator"] == "OPJ Martin, commissariat Nord"
    assert manifest["reason"] == "plainte 2026/118: dégradation du hall"
    assert manifest["case"] == "PV-2026-0042" and manifest["site"] == "test-site"
    assert manifest["software"].startswith("camera-gateway ")
    assert [c["camera"] for c in manifest["cameras"]] == ["hall", "stairs"]
    for camera in manifest["cameras"]:
        assert camera["gaps"] == [], camera["gaps"]
        assert camera["sources"] and all(s["seal"] == "ok" for s in camera["sources"])
        for source in camera["sources"]:
            on_disk = hashlib.sha256((box.root / source["path"]).read_bytes()).hexdigest()
            assert source["sha256"] == on_disk == source["sealed_sha256"]
            assert isinstance(source["chain_seq"], int)
    for entry in manifest["files"]:
        data = (package / entry["name"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    hall = next(f for f in manifest["files"] if f["camera"] == "hall")
    assert (hall["width"], hall["height"], hall["codec"]) == (704, 576, "h264")
    stairs = next(f for f in manifest["files"] if f["camera"] == "stairs")
    assert any("704x576 minimum" in w for w in manifest["warnings"]), "640x360 is flagged"
    assert stairs["width"] == 640


def test_each_clip_plays_and_covers_the_range_within_one_gop(package: Path) -> None:
    manifest = json.loads((package / "manifest.json").read_text())
    requested = _t(manifest["requested"]["end"]) - _t(manifest["requested"]["start"])
    for entry in manifest["files"]:
        clip = package / entry["name"]
        assert decode_errors(clip) == "", entry["name"]
        probe = ffprobe(clip)
        kinds = {s["codec_type"]: s for s in probe["streams"]}
        assert set(kinds) == {"video", "subtitle"}
        assert kinds["subtitle"]["codec_name"] == "mov_text"
        frames = int(kinds["video"]["nb_read_packets"])
        assert requested * FPS <= frames <= (requested + 1) * FPS + 3, frames
        duration = float(probe["format"]["duration"])
        assert requested - 0.1 <= duration <= requested + 1.1, duration
        head = clip.read_bytes()[:4096]
        assert head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head, "faststart"
        cues = run("ffmpeg", "-v", "error", "-i", str(clip), "-map", "0:s", "-f", "srt", "-")
        assert cues.returncode == 0, cues.stderr
        first_start = datetime.fromisoformat(entry["start"].replace("Z", "+00:00"))
        local = first_start.astimezone().strftime("%Y-%m-%d %H:%M")
        paris = first_start.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
        assert paris.strftime("%Y-%m-%d %H:%M") in cues.stdout or local in cues.stdout, cues.stdout[
            :300
        ]


def _nal_units(path: Path, start: float | None = None) -> list[tuple[int, str]]:
    """(type, sha256) of every NAL unit of the video packets, from the MP4's length prefixes."""
    out: list[tuple[int, str]] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            data = bytes(packet)
            pos = 0
            while pos + 4 <= len(data):
                size = int.from_bytes(data[pos : pos + 4], "big")
                unit = data[pos + 4 : pos + 4 + size]
                out.append((unit[0] & 0x1F, hashlib.sha256(unit).hexdigest()))
                pos += 4 + size
    return out


def test_the_clip_carries_every_nal_unit_of_the_recording_sei_included(
    box: Box, tmp_path: Path
) -> None:
    # x264 writes its SEI into the first keyframe of the session: export from there.
    first = min(_t(s["start"]) for s in box.gateway.listing("--camera", "hall")["segments"])
    out = tmp_path / "first"
    result = box.export(
        *("--camera", "hall", "--start", iso(first), "--end", iso(first + 6)),
        *("--operator", "OPJ", "--reason", "SEI check", "--output", str(out)),
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    source: list[tuple[int, str]] = []
    for segment in manifest["cameras"][0]["sources"]:
        source += _nal_units(box.root / segment["path"])
    exported = _nal_units(out / "hall.mp4")
    assert 6 in {t for t, _ in exported}, "the x264 SEI of the first keyframe is in the clip"
    assert exported == source[: len(exported)], "every NAL unit, in order, byte for byte"
    assert len(exported) >= 6 * FPS


def test_verify_on_the_box_checks_signatures_files_and_seals(box: Box, package: Path) -> None:
    result = cli("verify", str(package), "--config", str(box.config), "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 0, report["failed"]
    names = {c["check"] for c in report["checks"]}
    assert {"signer", "SHA256SUMS", "manifest.json.sig", "clip hall.mp4"} <= names
    assert any(n.startswith("source hall/") for n in names)
    alone = cli("verify", str(package))
    assert alone.returncode == 1 and "not confirmed: give --pubkey" in alone.stdout
    key = box.work / "box.pub.pem"
    key.write_text(cli("key", "show", "--config", str(box.config)).stdout.split("fingerprint")[0])
    given = cli("verify", str(package), "--pubkey", str(key))
    assert given.returncode == 0, given.stdout
    assert "package verified" in given.stdout


def test_the_export_is_journalled_and_holds_its_sources_under_the_case(
    box: Box, package: Path
) -> None:
    entries = audit_entries(box.root / "audit")
    export = next(e for e in entries if e["event"] == "export")
    manifest_sha = hashlib.sha256((package / "manifest.json").read_bytes()).hexdigest()
    assert export["manifest_sha256"] == manifest_sha
    assert (
        export["operator"] == "OPJ Martin, commissariat Nord" and export["case"] == "PV-2026-0042"
    )
    assert export["cameras"] == ["hall", "stairs"] and "command line" in export["via"]
    placed = next(e for e in entries if e["event"] == "hold_placed")
    assert placed["case"] == "PV-2026-0042" and placed["export"] == manifest_sha
    listing = cli("hold", "list", "--config", str(box.config), "--json")
    holds = json.loads(listing.stdout)["holds"]
    assert "PV-2026-0042" in [h["case"] for h in holds if not h["temporary"]]
    assert not any(h["temporary"] for h in holds), "the export's own hold was dropped"


# -- tampering --------------------------------------------------------------------------------


def _flip(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x20
    path.write_bytes(bytes(data))


def _alter_a_clip_and_rewrite_the_file_list(package: Path) -> None:
    _flip(package / "stairs.mp4")
    names = ("hall.mp4", "stairs.mp4", "manifest.json", "manifest.json.sig", "signer.pub.pem")
    (package / "SHA256SUMS").write_text(
        "".join(f"{hashlib.sha256((package / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
    )


MUTATIONS: dict[str, Callable[[Path], object]] = {
    "a byte of a clip": lambda p: _flip(p / "hall.mp4"),
    "a byte of the manifest": lambda p: _flip(p / "manifest.json", 0.3),
    "a byte of the signature": lambda p: _flip(p / "manifest.json.sig"),
    "a byte of the file list's signature": lambda p: _flip(p / "SHA256SUMS.sig"),
    "a clip and the file list rewritten to match": _alter_a_clip_and_rewrite_the_file_list,
    "a clip removed": lambda p: (p / "stairs.mp4").unlink(),
    "a file added": lambda p: (p / "extra.mp4").write_bytes(b"x"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_every_mutation_of_a_package_is_detected(
    box: Box, package: Path, tmp_path: Path, mutation: str
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(package, copy)
    assert cli("verify", str(copy), "--config", str(box.config)).returncode == 0
    MUTATIONS[mutation](copy)
    result = cli("verify", str(copy), "--config", str(box.config), "--json")
    assert result.returncode == 1, mutation
    failed = json.loads(result.stdout)["failed"]
    assert failed and all(f["detail"] or f["check"] for f in failed)
    # ...and by the stock tools alone, as VERIFY.txt has them run:
    sums = run("sha256sum", "-c", "SHA256SUMS", cwd=copy)
    list_sig = run(
        *("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "signer.pub.pem", "-rawin"),
        *("-in", "SHA256SUMS", "-sigfile", "SHA256SUMS.sig"),
        cwd=copy,
    )
    manifest_sig = run(
        *("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "signer.pub.pem", "-rawin"),
        *("-in", "manifest.json", "-sigfile", "manifest.json.sig"),
        cwd=copy,
    )
    stock_ok = sums.returncode == 0 and list_sig.returncode == 0 and manifest_sig.returncode == 0
    if mutation != "a file added":  # an extra file is not in the list: only `verify` says so
        assert not stock_ok, mutation


def test_a_source_segment_changed_at_rest_is_named_by_verify(
    box: Box, package: Path, tmp_path: Path
) -> None:
    manifest = json.loads((package / "manifest.json").read_text())
    source = box.root / manifest["cameras"][1]["sources"][0]["path"]
    kept = tmp_path / "kept"
    shutil.copy2(source, kept)
    try:
        _flip(source, 0.7)
        result = cli("recordings", "verify", "--config", str(box.config), "--camera", "stairs")
        assert result.returncode == 1 and "altered" in result.stdout
    finally:
        shutil.copy2(kept, source)


# -- refusals ---------------------------------------------------------------------------------


def test_bad_requests_are_refused_with_a_reason_and_write_nothing(box: Box, tmp_path: Path) -> None:
    out = tmp_path / "out"
    base = ("--operator", "OPJ", "--reason", "r", "--output", str(out))
    now = time.time()
    cases = {
        "unknown camera 'nope'": ("--camera", "nope", "--start", "1h", "--end", "1s"),
        "end of the range must be after its start": (
            "--camera",
            "hall",
            "--start",
            "1s",
            "--end",
            "1h",
        ),
        "the next starts at": (
            "--camera",
            "hall",
            "--start",
            iso(now - 3 * 86400),
            "--end",
            iso(now - 2 * 86400),
        ),
    }
    for message, args in cases.items():
        result = box.export(*args, *base)
        assert result.returncode == 1, (message, result.stdout)
        assert message in result.stderr, (message, result.stderr)
        assert not out.exists()
    blank = box.export(
        "--camera",
        "hall",
        "--start",
        "1m",
        "--end",
        "1s",
        *base[:2],
        "--reason",
        "  ",
        "--output",
        str(out),
    )
    assert blank.returncode == 1 and "reason: Value error, must not be blank" in blank.stderr
    missing = box.export(
        "--camera",
        "hall",
        "--start",
        "1m",
        "--end",
        "1s",
        "--operator",
        "OPJ",
        "--output",
        str(out),
    )
    assert missing.returncode == 2 and "--reason" in missing.stderr
    naive = box.export("--camera", "hall", "--start", "2026-12-01T10:00:00", "--end", "1s", *base)
    assert naive.returncode == 2 and "has no time zone" in naive.stderr
    out.mkdir()
    exists = box.export("--camera", "hall", "--start", "20s", "--end", "1s", *base)
    assert exists.returncode == 1 and "already exists" in exists.stderr
    assert list(out.iterdir()) == []
    assert not list(tmp_path.glob(".out.partial-*"))


def test_a_full_disk_during_export_leaves_no_package(box: Box, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "300k") as small:
        out = small / "package"
        result = box.export(
            "--camera",
            "hall",
            "--start",
            "15s",
            "--end",
            "1s",
            "--operator",
            "OPJ",
            "--reason",
            "r",
            "--output",
            str(out),
        )
        assert result.returncode == 1, result.stdout
        assert "No space left on device" in result.stderr or "disk" in result.stderr.lower()
        assert not out.exists() and list(small.iterdir()) == [], list(small.iterdir())


def test_a_sigkill_during_export_leaves_no_package_under_its_name(box: Box, tmp_path: Path) -> None:
    """Run on a copy of the box, stopped, so the export runs in the killed process itself."""
    copy = tmp_path / "box"
    shutil.copytree(box.root, copy / "rec", ignore=shutil.ignore_patterns(".lock"))
    config = write_config(
        tmp_path / "gw.yaml",
        copy / "rec",
        [{"id": "hall", "url": "rtsp://127.0.0.1:9/none"}],
        storage={"segment_duration": "4s"},
    )
    out = tmp_path / "package"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "export",
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
            "--output",
            str(out),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if list(tmp_path.glob(".package.partial-*")):
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.001)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == -signal.SIGKILL, "killed while the package was being written"
    assert not out.exists()


def test_a_gap_in_the_range_is_listed_with_its_reason(
    tmp_path: Path, cameras: StartCamera, gateway: StartGateway
) -> None:
    camera = cameras([f"/hall:fps={FPS}:gop={FPS}"])
    root = tmp_path / "rec"
    config = write_config(
        tmp_path / "gw.yaml",
        root,
        [{"id": "hall", "url": camera.url("/hall")}],
        storage={"segment_duration": "2s"},
    )
    gw = gateway(config)
    gw.wait_log("camera hall: online", 20)
    wait_until(lambda: len(gw.segments("hall")) >= 2, 30, "segments before")
    camera.pause()  # the camera goes silent: its session ends, a gap follows
    gw.wait_log("offline:", 15)
    camera.resume()
    gw.wait_log("camera hall: online", 20)
    count = len(gw.segments("hall"))
    wait_until(lambda: len(gw.segments("hall")) >= count + 2, 30, "segments after")
    out = tmp_path / "package"
    result = cli(
        *("export", "--config", str(config), "--camera", "hall", "--start", "2m", "--end", "1s"),
        *("--operator", "OPJ", "--reason", "gap", "--output", str(out)),
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    gaps = [g for g in manifest["cameras"][0]["gaps"] if g["seconds"] > 1]
    reasons = [g["reason"] for g in gaps]
    assert any("the camera's stream ended" in r for r in reasons), gaps
    assert decode_errors(out / "hall.mp4") == ""
