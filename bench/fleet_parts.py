"""The parts of the fleet simulation: the centre's broker and Prometheus, the boxes.

Each part is started from the files shipped in ``deploy/``, only paths, ports and intervals
changed, so that what the simulation measures is what an integrator installs:

- the centre's mosquitto runs ``deploy/mosquitto/centre.conf`` with ``centre.acl`` as they are
  (certificate identities, the operator ``csu-marseille``, the landlord ``landlord-monitoring``);
- the centre's Prometheus receives remote writes (``--web.enable-remote-write-receiver``) and
  evaluates ``deploy/prometheus/*.rules.yml``;
- each box is a real ``camera-gateway run`` with its own site id, client certificate and
  metrics port, and tiny ``sim://`` cameras, so that 50 boxes fit on 2 cores;
- one Prometheus in agent mode scrapes every box and remote-writes to the centre. On a real
  fleet each box runs its own agent (``deploy/prometheus/agent.yml``); one agent for all keeps
  50 boxes on this machine, and the series and samples it sends are the same.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))
from deployed import fill  # noqa: E402
from pki import Identity, Pki  # noqa: E402

GATEWAY = ROOT / ".venv" / "bin" / "camera-gateway"
OPERATOR = "csu-marseille"
LANDLORD = "landlord-monitoring"


@dataclass
class Part:
    """One process the simulation started, its log, and how to stop it."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGCONT)
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def freeze(self) -> None:
        """Stop every process of the part where it stands: a power cut, as the network sees it
        (no packet, no FIN, the connection left open until the broker's keep-alive runs out)."""
        os.killpg(self.process.pid, signal.SIGSTOP)


def start(name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> Part:
    out = log.open("wb")
    process = subprocess.Popen(
        cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    out.close()
    return Part(name, process, log)


def wait_port(port: int, part: Part, timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if part.process.poll() is not None:
            raise RuntimeError(f"{part.name} exited: {part.log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{part.name} does not listen on {port} after {timeout:.0f} s")


def broker(work: Path, pki: Pki, port: int) -> Part:
    """The centre's mosquitto from deploy/mosquitto/centre.conf: paths and port changed."""
    server = pki.server()
    conf = (ROOT / "deploy" / "mosquitto" / "centre.conf").read_text()
    swaps = {
        "/etc/mosquitto/camera-gateway/centre.acl": str(ROOT / "deploy/mosquitto/centre.acl"),
        "/etc/mosquitto/camera-gateway/fleet-ca.pem": str(pki.ca),
        "/etc/mosquitto/camera-gateway/broker.pem": str(server.cert),
        "/etc/mosquitto/camera-gateway/broker.key": str(server.key),
        "/etc/mosquitto/camera-gateway/fleet-crl.pem": str(pki.crl),
        "/var/lib/mosquitto/": f"{work}/",
    }
    conf = fill(conf, swaps, name="deploy/mosquitto/centre.conf")
    conf = re.sub(r"(?m)^listener 8883$", f"listener {port} 127.0.0.1", conf)
    conf = re.sub(r"(?m)^log_dest .*$", "log_dest stdout", conf)
    conf = re.sub(r"(?m)^max_connections .*$", "", conf) + "\nmax_connections -1\n"
    if os.geteuid() == 0:  # mosquitto would drop to its own user, which cannot read the keys
        conf += "user root\n"
    path = work / "centre.conf"
    path.write_text(conf)
    part = start("mosquitto", ["mosquitto", "-c", str(path)], work / "mosquitto.log")
    wait_port(port, part)
    return part


def centre_prometheus(work: Path, port: int) -> Part:
    """The centre's Prometheus: remote-write receiver, the fleet's rules, no scrape of boxes."""
    rules = sorted((ROOT / "deploy" / "prometheus").glob("*.rules.yml"))
    conf = work / "centre-prometheus.yml"
    conf.write_text(
        "global:\n  evaluation_interval: 15s\nrule_files:\n" + "".join(f"  - {r}\n" for r in rules)
    )
    part = start(
        "prometheus (centre)",
        [
            "prometheus",
            f"--config.file={conf}",
            f"--storage.tsdb.path={work / 'centre-tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-remote-write-receiver",
            "--log.level=warn",
        ],
        work / "centre-prometheus.log",
    )
    wait_port(port, part)
    return part


def agent(work: Path, port: int, centre: int, boxes: list[Box], interval: float) -> Part:
    """One Prometheus agent scraping every box (labels as deploy/prometheus/agent.yml sets
    them: ``site``, ``instance`` per box) and remote-writing to the centre."""
    lines = [
        f"global:\n  scrape_interval: {interval:g}s\n  scrape_timeout: {min(interval, 10):g}s\n",
        "scrape_configs:\n  - job_name: camera-gateway\n    static_configs:\n",
    ]
    for box in boxes:
        lines.append(
            f"      - targets: ['127.0.0.1:{box.metrics_port}']\n"
            f"        labels: {{instance: {box.site}, site: {box.site}, residence_city: Sim}}\n"
        )
    lines.append(f"remote_write:\n  - url: http://127.0.0.1:{centre}/api/v1/write\n")
    conf = work / "agent.yml"
    conf.write_text("".join(lines))
    part = start(
        "prometheus (agent)",
        [
            "prometheus",
            "--enable-feature=agent",
            f"--config.file={conf}",
            f"--storage.agent.path={work / 'agent-wal'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        work / "agent.log",
    )
    wait_port(port, part)
    return part


@dataclass
class Box:
    """One simulated gateway: a site, its identity, its ports and its daemon."""

    site: str
    identity: Identity
    metrics_port: int
    directory: Path
    part: Part | None = None


def box_config(box: Box, pki: Pki, broker_port: int, cameras: int, keepalive: float) -> Path:
    box.directory.mkdir(parents=True, exist_ok=True)
    cams = "".join(
        f"  - id: cam{k + 1}\n"
        f"    url: 'sim://cam{k + 1}?width=160&height=120&fps=6&gop=2&bitrate=50'\n"
        for k in range(cameras)
    )
    config = box.directory / "config.yaml"
    config.write_text(
        f"site_id: {box.site}\n"
        "storage:\n"
        f"  path: {box.directory / 'data'}\n"
        "  quota: 8MB\n  max_age: 1h\n  min_free: 100MB\n  segment_duration: 10s\n"
        f"cameras:\n{cams}"
        "minimum: {width: 160, height: 120}\n"
        f"control: {{socket: {box.directory / 'control.sock'}}}\n"
        f"metrics: {{listen: '127.0.0.1:{box.metrics_port}'}}\n"
        "mqtt:\n"
        f"  host: 127.0.0.1\n  port: {broker_port}\n  keepalive: {keepalive:g}s\n"
        f"  tls: {{ca_file: {pki.ca}, cert_file: {box.identity.cert}, "
        f"key_file: {box.identity.key}}}\n"
    )
    return config


def start_box(box: Box, config: Path) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    box.part = start(
        box.site, [str(GATEWAY), "run", "--config", str(config)], box.directory / "log", env
    )
