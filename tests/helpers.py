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
        "site_id": extra.pop("site_id", "test-site"),
        "storage": storage_cfg,
        "cameras": cameras,
        "metrics": {"listen": f"127.0.0.1:{extra.pop('metrics_port', free_port())}"},
        "control": {"socket": str(path.parent / "ctl.sock")},
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

    def workers(self) -> dict[str, int]:
        """Camera id -> pid of its worker process (named ``cgw:<camera>``)."""
        assert self.proc is not None
        found = {}
        for pid in descendants(self.proc.pid):
            name = process_name(pid)
            if name.startswith("cgw:") and alive(pid):
                found[name[4:]] = pid
        return found

    def segments(self, camera: str | None = None, *, partial: bool = False) -> list[Path]:
        pattern = "*.mp4.part" if partial else "*.mp4"
        base = self.storage / camera if camera else self.storage
        return sorted(base.rglob(pattern)) if base.exists() else []

    def status(self, timeout: float = 10.0) -> dict[str, dict[str, Any]]:
        """Camera id -> status, asked over the control socket like the command line does (from
        this process: a CLI process per question would cost more than the question)."""
        from gateway.daemon.control import ControlError, call

        socket_path = Path(yaml.safe_load(self.config.read_text())["control"]["socket"])
        deadline = time.monotonic() + timeout
        while True:  # the daemon may be starting: its socket bound, not yet listening
            try:
                answer = call(socket_path, {"command": "status"}, timeout=timeout)
                break
            except ControlError:
                if self._died() or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert answer.get("ok"), answer
        return {camera["id"]: camera for camera in answer["status"]["cameras"]}

    def forward(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``camera-gateway forward ...`` against this daemon."""
        return cli("forward", *args, "--config", str(self.config))

    def forward_status(self) -> dict[str, Any]:
        result = self.forward("status", "--json")
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))

    def forward_journal(self) -> list[dict[str, Any]]:
        """The forward sessions' entries of the audit journal."""
        return [e for e in self.audit() if str(e.get("event", "")).startswith("forward_")]

    def audit(self, *events: str) -> list[dict[str, Any]]:
        """The audit journal's entries (of these events only, when given)."""
        entries = audit_entries(self.storage / "audit")
        return [e for e in entries if not events or e.get("event") in events]

    def metrics(self) -> str:
        import urllib.request

        listen = yaml.safe_load(self.config.read_text())["metrics"]["listen"]
        with urllib.request.urlopen(f"http://{listen}/metrics", timeout=5) as response:
            return str(response.read().decode())

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


RECEIVER_SCRIPT = ROOT / "tests" / "support" / "rtsp_receiver.py"


class CentreReceiver:
    """The centre's RTSP ingest (GStreamer RTSP server in RECORD mode), writing .ts files."""

    def __init__(
        self,
        paths: list[str],
        out: Path,
        *,
        port: int | None = None,
        tls: tuple[Path, Path] | None = None,
        auth: str | None = None,
        address: str = "127.0.0.1",
        netns: str | None = None,
        codec: str = "h264",
        arrivals: Path | None = None,
        digest: bool = False,
    ) -> None:
        self.paths, self.out, self.tls, self.auth = paths, out, tls, auth
        self.digest = digest
        self.port = port or free_port()
        self.address, self.netns, self.codec, self.arrivals = address, netns, codec, arrivals
        self.proc: subprocess.Popen[str] | None = None
        self.log_path = out.parent / f"receiver-{self.port}.log"

    def start(self, timeout: float = 15.0) -> CentreReceiver:
        cmd = [
            SYSTEM_PYTHON,
            str(RECEIVER_SCRIPT),
            "--port",
            str(self.port),
            "--out",
            str(self.out),
        ]
        cmd += ["--address", self.address, "--codec", self.codec]
        for path in self.paths:
            cmd += ["--path", path]
        if self.tls:
            cmd += ["--tls", str(self.tls[0]), str(self.tls[1])]
        if self.auth:
            cmd += ["--auth", self.auth]
        if self.digest:
            cmd.append("--digest")
        if self.arrivals:
            cmd += ["--arrivals", str(self.arrivals)]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
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
        raise RuntimeError(f"receiver did not start: {self.log_path.read_text()[-2000:]}")

    def url(self, scheme: str = "rtsp") -> str:
        return f"{scheme}://{self.address}:{self.port}/{{site_id}}/{{camera_id}}"

    def files(self) -> list[Path]:
        return sorted(self.out.glob("*.ts"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def video_frames(path: Path, *, growing: bool = False) -> int:
    """Frames ffprobe decodes from the first video stream of ``path``.

    ``growing``: the file is still being written and may not be readable yet (0 then).
    """
    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if growing and result.returncode != 0:
        return 0
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[0] if result.stdout.split() else 0)


def make_certificates(directory: Path, name: str = "centre") -> dict[str, Path]:
    """A test CA and a server certificate for 127.0.0.1 signed by it (openssl)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / f"{name}-ca.key", directory / f"{name}-ca.pem"
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.pem"
    ext = directory / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,IP:10.231.0.2,DNS:localhost\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name} test CA",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca_cert),
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        str(key),
        "-out",
        str(csr),
    )
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca_cert),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        str(ext),
        "-out",
        str(cert),
    )
    return {"ca": ca_cert, "cert": cert, "key": key}


def spki_pin(cert: Path) -> str:
    """base64 SHA-256 of the certificate's public key, computed by openssl alone."""
    pubkey = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"], check=True, capture_output=True
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"],
        input=pubkey,
        check=True,
        capture_output=True,
    ).stdout
    digest = subprocess.run(
        ["openssl", "dgst", "-sha256", "-binary"], input=der, check=True, capture_output=True
    ).stdout
    import base64

    return base64.b64encode(digest).decode()


@contextmanager
def slow_link(rate: str) -> Iterator[tuple[str, str]]:
    """A network namespace reached over a veth pair shaped to ``rate`` (e.g. '300kbit').

    Yields (namespace name, its address). Needs root.
    """
    suffix = f"{os.getpid() % 10000}"
    ns, host_if, ns_if = f"cgw{suffix}", f"cgwh{suffix}", f"cgwn{suffix}"
    commands = [
        ["ip", "netns", "add", ns],
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
        ["ip", "link", "set", ns_if, "netns", ns],
        ["ip", "addr", "add", "10.231.0.1/30", "dev", host_if],
        ["ip", "link", "set", host_if, "up"],
        ["ip", "netns", "exec", ns, "ip", "addr", "add", "10.231.0.2/30", "dev", ns_if],
        ["ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up"],
        ["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"],
        [
            "tc",
            "qdisc",
            "add",
            "dev",
            host_if,
            "root",
            "tbf",
            "rate",
            rate,
            "burst",
            "16kb",
            "latency",
            "200ms",
        ],
    ]
    try:
        for command in commands:
            subprocess.run(command, check=True, capture_output=True)
        yield ns, "10.231.0.2"
    finally:
        subprocess.run(["ip", "link", "del", host_if], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (the daemon's fork server and camera workers), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def metric(text: str, name: str) -> float:
    """Value of one sample (``name`` includes its labels) in a Prometheus exposition."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exposed")


class Broker:
    """A real mosquitto broker on free ports: plain TCP with a password file, and TLS."""

    def __init__(
        self,
        directory: Path,
        *,
        users: dict[str, str],
        tls: dict[str, Path] | None,
        acl: Path | None = None,
    ) -> None:
        self.directory = directory
        self.acl = acl
        self.users = users
        self.tls = tls
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        self.directory.mkdir(parents=True, exist_ok=True)
        passwords = self.directory / "passwords"
        passwords.write_text("")
        for user, password in self.users.items():
            subprocess.run(
                ["mosquitto_passwd", "-b", str(passwords), user, password],
                check=True,
                capture_output=True,
            )
        lines = [
            # As root, mosquitto would switch to its own user, who cannot read the test's files.
            *(["user root"] if os.geteuid() == 0 else []),
            "persistence false",
            "allow_anonymous false",
            f"password_file {passwords}",
            *([f"acl_file {self.acl}"] if self.acl else []),
            "per_listener_settings false",
            f"listener {self.port} 127.0.0.1",
        ]
        if self.tls and self.tls_port:
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"cafile {self.tls['ca']}",
                f"certfile {self.tls['cert']}",
                f"keyfile {self.tls['key']}",
            ]
        config = self.directory / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        log = (self.directory / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=log, stderr=log)
        wait_until(lambda: _port_open(self.port), 10, "mosquitto to listen")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class MqttWatcher:
    """A subscriber (paho) that records every message under a topic filter."""

    def __init__(self, port: int, user: str, password: str, topic: str) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, bool]] = []
        self.retained: dict[str, bytes] = {}
        self._client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self._client.username_pw_set(user, password)

        def on_message(_c: Any, _u: Any, message: Any) -> None:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))
            self.retained[message.topic] = bytes(message.payload)

        def on_connect(client: Any, *_args: Any) -> None:
            from paho.mqtt.subscribeoptions import SubscribeOptions

            # "Retain as published": the retain flag tells what the gateway asked for.
            client.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=True))

        self._client.on_message = on_message
        self._client.on_connect = on_connect
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    def publish(self, topic: str, payload: str) -> None:
        self._client.publish(topic, payload, qos=1).wait_for_publish(5)

    def json(self, topic: str) -> dict[str, Any]:
        return dict(json.loads(self.retained[topic]))

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        found = [json.loads(p) for t, p, _ in self.messages if t.endswith("/events")]
        return [e for e in found if kind is None or e["event"] == kind]

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


class NotifySocket:
    """What systemd listens on for a Type=notify service; read continuously, as systemd does
    (its queue holds 10 datagrams: a reader that stops would make the daemon drop messages)."""

    def __init__(self, path: Path) -> None:
        import threading

        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))

    def drain(self) -> list[tuple[float, dict[str, str]]]:
        time.sleep(0.05)
        return list(self.messages)

    def has(self, key: str, value: str | None = None) -> bool:
        return any(key in f and (value is None or f[key] == value) for _, f in self.drain())

    def times(self, key: str) -> list[float]:
        return [t for t, f in self.drain() if key in f]

    def close(self) -> None:
        self._closed.set()
        self._reader.join(1)
        self.sock.close()


def audit_entries(folder: Path) -> list[dict[str, Any]]:
    """Every entry of the audit journal in ``folder``, oldest first (read without a key)."""
    from gateway.integrity.audit import AuditLog
    from gateway.integrity.keys import SigningKeyError

    def no_key() -> Any:
        raise SigningKeyError("read only")

    return list(AuditLog(folder, no_key).entries())


# The fixtures of tests/conftest.py that start a part: each is a function taking the part's own
# arguments and returning it started; every part it started is stopped at teardown.
StartCamera = Callable[..., CameraServer]
"""``cameras(mounts, **options)``: a GStreamer RTSP camera serving ``mounts``."""
StartGateway = Callable[..., GatewayProcess]
"""``gateway(config, *args, env=None)``: the daemon on ``config``."""
StartCentre = Callable[..., CentreReceiver]
"""``centre(paths, **options)``: a receiving centre accepting pushes on ``paths``."""
