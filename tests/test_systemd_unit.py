"""The systemd unit, the install script and the example configuration shipped for a box.

No systemd needs to be running: `systemd-analyze verify` and `systemd-analyze security
--offline=true` read the unit file only, the install script is exercised with ``--dry-run``, and
the example configuration goes through the daemon's own ``check-config``.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "camera-gateway.service"
SYSUSERS = ROOT / "deploy" / "sysusers.d" / "camera-gateway.conf"
INSTALL = ROOT / "deploy" / "install.sh"
EXAMPLE = ROOT / "deploy" / "config.example.yaml"

EXEC_BINARY = "/opt/camera-gateway/venv/bin/camera-gateway"
MAX_EXPOSURE = 2.0

STRICT = os.environ.get("CAMERA_GATEWAY_STRICT") == "1"


def _systemd_analyze() -> str:
    """Path of systemd-analyze; skipped without it, except under `make test` where it fails."""
    path = shutil.which("systemd-analyze")
    if path is None:
        if STRICT:
            pytest.fail("systemd-analyze not found (Debian package systemd)")
        pytest.skip("needs systemd-analyze (Debian package systemd)")
    return path


def _directives(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of every active line of a unit file, in order; comments skipped."""
    out: list[tuple[str, str, str]] = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {raw!r}"
        out.append((section, key.strip(), value.strip()))
    return out


def _values(key: str, section: str = "Service") -> list[str]:
    return [v for s, k, v in _directives(UNIT.read_text()) if s == section and k == key]


def _one(key: str, section: str = "Service") -> str:
    values = _values(key, section)
    assert len(values) == 1, f"{key}= set {len(values)} times in [{section}]: {values}"
    return values[0]


# --- (a) systemd-analyze verify --------------------------------------------------------------


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # `verify` refuses a unit whose ExecStart binary does not exist, and the venv is only there on
    # an installed box. The copy differs from the unit in that one token: the binary becomes this
    # Python interpreter (an existing executable); its arguments and every other line stay as
    # they are. User=camera-gateway is kept: systemd 252's verify does not resolve users (and a
    # replacement such as nobody draws a warning of its own).
    text = UNIT.read_text()
    prefix = f"ExecStart={EXEC_BINARY} "
    exec_lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(exec_lines) == 1, f"expected one line starting with {prefix!r}"
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(prefix, f"ExecStart={sys.executable} ", 1))
    result = subprocess.run(
        [_systemd_analyze(), "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    about_unit = [line for line in output.splitlines() if UNIT.name in line or str(copy) in line]
    assert result.returncode == 0, output
    # verify exits 0 on an unknown key or an unparsable value ("..., ignoring."): any line about
    # the unit is a failure.
    assert about_unit == [], "\n".join(about_unit)


def test_verify_would_catch_a_bad_line(tmp_path: Path) -> None:
    # The test above relies on verify reporting a mistyped setting; check it does, here.
    copy = tmp_path / UNIT.name
    text = UNIT.read_text().replace(f"ExecStart={EXEC_BINARY} ", f"ExecStart={sys.executable} ")
    copy.write_text(
        text.replace("[Service]\n", "[Service]\nProtectSystem=stricter\nProtectSytem=x\n")
    )
    result = subprocess.run(
        [_systemd_analyze(), "verify", str(copy)], capture_output=True, text=True, timeout=30
    )
    output = result.stdout + result.stderr
    assert "stricter" in output and "ProtectSytem" in output, output


# --- (b) systemd-analyze security --------------------------------------------------------------


def _exposure(unit: Path) -> tuple[float, str]:
    result = subprocess.run(
        [_systemd_analyze(), "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", output)
    assert match is not None, f"no overall exposure level in:\n{output}"
    return float(match.group(1)), output


def test_security_exposure_is_at_most_2() -> None:
    exposure, output = _exposure(UNIT)
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}:\n{output}"


def test_security_check_would_catch_a_weaker_unit(tmp_path: Path) -> None:
    # The same service without its sandbox must score above the limit, or the test above proves
    # nothing.
    weak = tmp_path / UNIT.name
    weak.write_text(f"[Service]\nType=notify\nExecStart={EXEC_BINARY} run\nUser=camera-gateway\n")
    exposure, output = _exposure(weak)
    assert exposure > MAX_EXPOSURE, output


# --- (c) what the daemon relies on ----------------------------------------------------------------


def test_unit_service_contract() -> None:
    assert _one("Type") == "notify"
    assert _one("NotifyAccess") == "main"
    assert _one("WatchdogSec") == "30s"
    assert _one("Restart") == "on-failure"
    assert _one("RestartSec") == "2s"
    assert _one("TimeoutStopSec") == "15s"
    assert _one("ExecStart") == f"{EXEC_BINARY} run --config /etc/camera-gateway/config.yaml"
    reload = _one("ExecReload")
    assert re.fullmatch(r"/(usr/)?bin/kill -(HUP|s HUP|SIGHUP) \$MAINPID", reload), reload
    assert _one("User") == "camera-gateway"
    assert _one("Group") == "camera-gateway"
    assert _one("StateDirectory") == "camera-gateway"
    assert _one("StateDirectoryMode") == "0750"
    assert _one("RuntimeDirectory") == "camera-gateway"
    assert _one("RuntimeDirectoryMode") == "0750"
    assert _one("ConfigurationDirectory") == "camera-gateway"
    assert _one("UMask") == "0027"
    assert "PYTHONUNBUFFERED=1" in _values("Environment")
    assert _one("WantedBy", "Install") == "multi-user.target"


def test_unit_sandbox_keeps_what_the_daemon_needs() -> None:
    families = set(_one("RestrictAddressFamilies").split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6"}
    # Without it a denied call is fatal (SIGSYS), and importing numpy makes one (mbind).
    assert _one("SystemCallErrorNumber") == "EPERM"
    allowed = " ".join(_values("SystemCallFilter")).split()
    # glibc's adjtimex() is the clock_adjtime system call: both serve the read-only NTP query.
    assert {"adjtimex", "clock_adjtime"} <= set(allowed)
    assert _one("CapabilityBoundingSet") == ""
    assert _one("NoNewPrivileges") == "yes"
    # Each of these would break a feature; the unit's comments say which.
    for key in ("PrivateUsers", "ProtectClock", "ProcSubset", "IPAddressDeny", "IPAddressAllow"):
        assert _values(key) == [], f"{key}= breaks the daemon: see the comment in the unit"


def test_credentials_are_documented_for_every_password_file() -> None:
    # No LoadCredential= is active (a missing source file stops the service from starting); an
    # example is given, commented out, for every relative password_file of the example config.
    assert _values("LoadCredential") == []
    documented = set(re.findall(r"^#\s*LoadCredential=([^:\s]+):(\S+)$", UNIT.read_text(), re.M))
    names = {name for name, _ in documented}
    for name, source in documented:
        assert source == f"/etc/camera-gateway/credentials/{name}"
    assert "hall-a" in names
    relative = {str(p) for p in _password_files(yaml.safe_load(EXAMPLE.read_text())) if p[0] != "/"}
    assert relative, "the example config should use credentials (relative password_file)"
    assert relative <= names, f"no LoadCredential example for {relative - names}"


def test_paths_agree_between_unit_config_sysusers_and_installer() -> None:
    config = yaml.safe_load(EXAMPLE.read_text())
    assert config["storage"]["path"] == "/var/lib/" + _one("StateDirectory")
    socket = Path(config["control"]["socket"])
    assert socket.parent == Path("/run") / _one("RuntimeDirectory")
    assert config["metrics"]["listen"] == "127.0.0.1:9108"
    sysusers = [line.split() for line in SYSUSERS.read_text().splitlines()]
    users = [f for f in sysusers if f and f[0] == "u"]
    assert len(users) == 1 and users[0][1] == _one("User") == _one("Group")
    assert "/var/lib/camera-gateway" in users[0]
    installer = INSTALL.read_text()
    assert "VENV=$PREFIX/venv" in installer and "PREFIX=/opt/camera-gateway" in installer
    assert EXEC_BINARY == "/opt/camera-gateway/venv/bin/camera-gateway"


# --- (d) the install script -------------------------------------------------------------------


def test_install_script_is_valid_sh() -> None:
    result = subprocess.run(["sh", "-n", str(INSTALL)], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    assert INSTALL.stat().st_mode & stat.S_IXUSR, "deploy/install.sh should be executable"
    assert re.search(r"^set -eu$", INSTALL.read_text(), re.M)


def test_install_dry_run_shows_every_step_and_changes_nothing(tmp_path: Path) -> None:
    # Every command that would change the system is replaced by a stub that records its call:
    # a dry run must call none of them.
    stubs = tmp_path / "bin"
    stubs.mkdir()
    calls = tmp_path / "calls"
    for name in ("install", "ln", "apt-get", "systemd-sysusers", "systemctl", "python3", "pip"):
        stub = stubs / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\nexit 1\n')
        stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    result = subprocess.run(
        [str(INSTALL), "--dry-run"], capture_output=True, text=True, timeout=30, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not calls.exists(), f"the dry run ran: {calls.read_text()}"
    out = result.stdout
    assert "/etc/systemd/system/camera-gateway.service" in out
    assert "/usr/lib/sysusers.d/camera-gateway.conf" in out
    assert "systemd-sysusers" in out
    assert "/opt/camera-gateway/venv" in out
    assert re.search(r"pip install .*--upgrade .*" + re.escape(str(ROOT)), out)
    assert "/etc/camera-gateway/credentials" in out
    assert "systemctl enable --now camera-gateway" in out


def test_install_refuses_unknown_arguments() -> None:
    result = subprocess.run(
        [str(INSTALL), "--frobnicate"], capture_output=True, text=True, timeout=10
    )
    assert result.returncode == 2
    assert "usage" in result.stderr


# --- (e) the example configuration -------------------------------------------------------------


def _password_files(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "password_file" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(_password_files(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_password_files(item))
    return found


def _absolute_files(node: Any) -> list[str]:
    """Absolute paths given to ``*_file`` keys (CA, client certificate...)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("_file") and isinstance(value, str) and value.startswith("/"):
                found.append(value)
            else:
                found.extend(_absolute_files(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_absolute_files(item))
    return found


def test_example_config_passes_check_config(tmp_path: Path) -> None:
    # The files the example names do not exist on a test machine. As systemd would, the test
    # sets $CREDENTIALS_DIRECTORY to a folder holding one file per relative password_file; the
    # absolute file paths (the centre's CA) are rewritten to files made here. Nothing else of the
    # example is changed.
    text = EXAMPLE.read_text()
    config = yaml.safe_load(text)
    assert "mqtt" not in config, "keep the mqtt section commented out until the daemon has it"
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    secrets = []
    for name in _password_files(config):
        assert not name.startswith("/"), f"use a credential name, not a path: {name}"
        secret = f"secret-of-{name}-7f3a"
        (credentials / name).write_text(secret + "\n")
        secrets.append(secret)
    for index, path in enumerate(sorted(set(_absolute_files(config)))):
        replacement = tmp_path / f"file-{index}{Path(path).suffix}"
        replacement.write_text("placeholder\n")
        text = text.replace(path, str(replacement))
    copy = tmp_path / "config.yaml"
    copy.write_text(text)
    env = {**os.environ, "CREDENTIALS_DIRECTORY": str(credentials)}
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", "--config", str(copy)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"{copy}: valid" in result.stdout
    assert "camera hall-a" in result.stdout and "camera parking" in result.stdout
    for secret in secrets:
        assert secret not in output


def test_example_mqtt_section_matches_the_daemon_once_uncommented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The commented-out mqtt: block is what an integrator will uncomment: once the daemon knows
    # the section, it must validate as written (same file substitutions as above).
    from gateway.config.model import Config

    if "mqtt" not in Config.model_fields:
        pytest.skip("this version of the daemon has no mqtt section yet")
    lines = EXAMPLE.read_text().splitlines()
    start = lines.index("# mqtt:")
    block = [line.removeprefix("# ").removeprefix("#") for line in lines[start:]]
    assert all(line.strip() and not line.startswith("#") for line in block), block
    data = yaml.safe_load("\n".join(block))["mqtt"]
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / data["password_file"]).write_text("secret\n")
    for key in ("ca_file", "cert_file", "key_file"):
        replacement = tmp_path / Path(data["tls"][key]).name
        replacement.write_text("placeholder\n")
        data["tls"][key] = str(replacement)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    storage = {"path": str(tmp_path / "storage"), "quota": "1GiB"}
    config = Config.model_validate(
        {"site_id": "res-0042", "storage": storage, "mqtt": data}, context={"base_dir": tmp_path}
    )
    assert config.mqtt is not None
