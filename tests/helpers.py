"""Real parts for the tests: a GStreamer RTSP camera, the daemon as a process, ffprobe."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CAMERA_SCRIPT = ROOT / "tests" / "support" / "rtsp_camera.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any], timeout: float, message: str = "condition", interval: float = 0.1
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


class CameraServer:
    """The GStreamer RTSP server (system Python), serving test-pattern mounts like a camera."""

    def __init__(
        self,
        mounts: list[str],
        log_dir: Path,
        *,
        port: int | None = None,
        auth: str | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.mounts = mounts
        self.port = port or free_port()
        self.auth = auth
        self.tls = tls
        self.log_path = log_dir / f"camera-{self.port}.log"
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 15.0) -> CameraServer:
        cmd = [SYSTEM_PYTHON, str(CAMERA_SCRIPT), "--port", str(self.port)]
        for mount in self.mounts:
            cmd += ["--mount", mount]
        if self.auth:
            cmd += ["--auth", self.auth]
        if self.tls:
            cmd += ["--tls", str(self.tls[0]), str(self.tls[1])]
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("READY"):
                return self
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError(f"camera server did not start: {self.log_path.read_text()[-2000:]}")

    def url(self, mount: str, *, scheme: str = "rtsp") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{mount}"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def write_config(path: Path, root: Path, cameras: list[dict[str, Any]], **extra: Any) -> Path:
    storage_cfg = {
        "path": str(root),
        "quota": "1GiB",
        "max_age": "1d",
        "min_free": "10MB",
        "segment_duration": "4s",
    }
    storage_cfg.update(extra.pop("storage", {}))
    data = {
        "site_id": "test-site",
        "storage": storage_cfg,
        "cameras": cameras,
        "metrics": {"listen": f"127.0.0.1:{extra.pop('metrics_port', free_port())}"},
    }
    data.update(extra)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


class GatewayProcess:
    """``camera-gateway run`` as a real process, logging to a file."""

    def __init__(self, config: Path, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.storage = Path(yaml.safe_load(config.read_text())["storage"]["path"])
        n = 1
        while (log_dir / f"gateway-{config.stem}-{n}.log").exists():
            n += 1
        self.log_path = log_dir / f"gateway-{config.stem}-{n}.log"
        self.log_path.touch()
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *args: str) -> GatewayProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", *args, "run", "--config", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )
        return self

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, text: str, timeout: float = 20.0, *, count: int = 1) -> None:
        wait_until(
            lambda: self.log.count(text) >= count or self._died(), timeout, f"log line {text!r}"
        )
        assert self.log.count(text) >= count, f"gateway exited early:\n{self.log[-3000:]}"

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def stop(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(5)

    def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def segments(self, camera: str | None = None, *, partial: bool = False) -> list[Path]:
        pattern = "*.mp4.part" if partial else "*.mp4"
        base = self.storage / camera if camera else self.storage
        return sorted(base.rglob(pattern)) if base.exists() else []

    def listing(self, *args: str) -> dict[str, Any]:
        result = cli("recordings", "list", "--config", str(self.config), "--json", *args)
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))


def ffprobe(path: Path) -> dict[str, Any]:
    """Streams (with packet counts) and format of a file, read by FFmpeg's own ffprobe."""
    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_packets",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"ffprobe failed on {path}: {result.stderr}"
    return dict(json.loads(result.stdout))


def video_packets(path: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,dts_time,flags",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout)["packets"])


def decode_errors(path: Path) -> str:
    """What FFmpeg complains about when decoding every frame of ``path`` ('' if nothing)."""
    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stderr.strip() + (
        "" if result.returncode == 0 else f" (exit {result.returncode})"
    )


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
