"""deploy/install.sh into a staging root (``--root``), as whoever runs the tests: a dry run that
changes nothing, the tree it installs with its modes, a second run that changes nothing, an
upgrade from a newer checkout that keeps the recordings, the journal, the keys, the credentials
and the configuration, and ``--uninstall``, which keeps them too and says where.

Both checkouts are git clones of this repository's HEAD with the working tree's ``deploy/`` and
``systemd/`` on top (what is under test here), so that work in progress elsewhere in the tree is
not installed. The venv takes its dependencies from the venv running the tests (``install.sh
--deps-from``): pip installs the package alone and fetches only its build tools (setuptools,
wheel) from PyPI. Without PyPI the tests that build a venv are skipped, saying so.

tests/test_systemd_unit.py checks the unit itself and install.sh's dry run on the box's own paths.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import audit_entries, wait_until, write_config

from gateway.config.services import AUDIT_DIRECTORY, KEYS_DIRECTORY

ROOT = Path(__file__).resolve().parent.parent
NAME = "camera-gateway"
DEPS = Path(sys.prefix)
"""The venv running the tests: it has every dependency (``install.sh --deps-from``)."""
COMMAND = f"opt/{NAME}/venv/bin/{NAME}"

Entry = tuple[str, int, str]
"""(kind, permission bits, sha256 of a file's bytes or a link's target) of a path in a tree."""


def _git(*args: str, cwd: Path | None = None) -> str:
    identity = ["-c", "user.name=install test", "-c", "user.email=install-test@example.invalid"]
    result = subprocess.run(
        ["git", *identity, *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _install(src: Path, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(src / "deploy" / "install.sh"), "--root", str(root), "--deps-from", str(DEPS), *args],
        cwd=src,  # as from a clone: its own egg-info or package must not be mistaken for the venv's
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(root: Path) -> dict[str, Entry]:
    """Every path under ``root``; byte-code left out (pip compiles it again on each install)."""
    found: dict[str, Entry] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in dirs + files:
            path = Path(folder) / name
            mode = stat.S_IMODE(path.lstat().st_mode)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = ("link", 0, os.readlink(path))
            elif path.is_dir():
                found[rel] = ("dir", mode, "")
            elif not name.endswith(".pyc"):
                found[rel] = ("file", mode, _sha256(path))
    return found


def _files(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): _sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _version(src: Path) -> str:
    text = (src / "gateway" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    assert match, "gateway/__init__.py has no __version__"
    return match.group(1)


@pytest.fixture(scope="module")
def pypi() -> None:
    """Skip, with the reason, when the package index pip would use cannot be reached."""
    url = urllib.parse.urlsplit(os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple/"))
    host = url.hostname or "pypi.org"
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        pytest.skip(f"{host}:{port} is unreachable ({exc}): pip fetches the build tools there")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone of HEAD, with the working tree's deploy/ and systemd/ committed on top."""
    src = tmp_path_factory.mktemp("checkout") / NAME
    _git("clone", "--quiet", str(ROOT), str(src))
    for part in ("deploy", "systemd"):
        shutil.rmtree(src / part)
        shutil.copytree(ROOT / part, src / part)
    if _git("status", "--porcelain", cwd=src).strip():
        _git("add", "-A", cwd=src)
        _git("commit", "--quiet", "-m", "The deploy files under test", cwd=src)
    return src


def _newer(checkout: Path, where: Path) -> Path:
    """A newer checkout: one more commit, a version bump and a changed unit."""
    new = where / "newer" / NAME
    _git("clone", "--quiet", str(checkout), str(new))
    init = new / "gateway" / "__init__.py"
    old = _version(checkout)
    init.write_text(init.read_text().replace(f'"{old}"', f'"{old}.post1"'))
    unit = new / "systemd" / f"{NAME}.service"
    unit.write_text(unit.read_text() + "# the newer checkout's unit\n")
    _git("commit", "--quiet", "-am", f"Version {old}.post1", cwd=new)
    return new


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path, for the control socket (sun_path is 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="cgw-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_dry_run_into_a_root_shows_every_step_and_changes_nothing(
    checkout: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    result = _install(checkout, root, "--dry-run")
    assert list(root.iterdir()) == [], "a dry run made files"
    out = result.stdout
    assert "dry run: nothing is changed" in out
    for path in (
        f"/etc/systemd/system/{NAME}.service",
        f"/usr/lib/sysusers.d/{NAME}.conf",
        f"/usr/lib/tmpfiles.d/{NAME}.conf",
        f"/etc/systemd/timesyncd.conf.d/{NAME}.conf",
        f"/opt/{NAME}/venv",
        f"/etc/{NAME}/credentials",
    ):
        assert f"{root}{path}" in out, path
    assert re.search(rf"pip install .*--upgrade --no-deps {re.escape(str(checkout))}$", out, re.M)
    for skipped in ("apt-get", "systemd-sysusers", "systemd-tmpfiles --create", "chown root:"):
        assert f"skipped in the staging root {root}: {skipped}" in out, skipped
    assert f"skipped in the staging root {root}: systemctl daemon-reload" in out
    uninstall = _install(checkout, root, "--uninstall", "--dry-run")
    assert list(root.iterdir()) == []
    assert f"recordings         {root}/var/lib/{NAME} (not there)" in uninstall.stdout


def test_tmpfiles_entries_are_the_unit_s_directories_and_the_configuration_s_defaults() -> None:
    unit = (ROOT / "systemd" / f"{NAME}.service").read_text()

    def directive(key: str) -> str:
        (value,) = re.findall(rf"^{key}=(.*)$", unit, re.M)
        return str(value)

    state = f"/var/lib/{directive('StateDirectory')}"
    entries = [
        line.split()
        for line in (ROOT / "deploy" / "tmpfiles.d" / f"{NAME}.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert [e[1] for e in entries] == [
        state,
        f"{state}/{AUDIT_DIRECTORY}",
        f"{state}/{KEYS_DIRECTORY}",
        f"/run/{directive('RuntimeDirectory')}",
    ]
    user, group = directive("User"), directive("Group")
    for kind, _path, mode, owner, owner_group, age in entries:
        assert kind == "d" and (owner, owner_group) == (user, group)
        assert mode == directive("StateDirectoryMode") == directive("RuntimeDirectoryMode")
        assert age == "-", "systemd-tmpfiles --clean must never delete recordings or the journal"


@pytest.mark.timeout(300)
def test_install_into_a_root_makes_the_tree_and_a_second_run_changes_nothing(
    pypi: None, checkout: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    first = _install(checkout, root)
    tree = _tree(root)

    def shipped(rel: str, source: str, mode: int) -> None:
        assert tree[rel] == ("file", mode, _sha256(checkout / source)), rel

    assert tree[f"opt/{NAME}"][:2] == ("dir", 0o755)
    assert tree[f"opt/{NAME}/venv"][:2] == ("dir", 0o755)
    assert tree[COMMAND][1] & 0o111, "the command is executable"
    assert tree[f"usr/local/bin/{NAME}"] == ("link", 0, f"/{COMMAND}")
    assert tree[f"etc/{NAME}"][:2] == ("dir", 0o750)
    assert tree[f"etc/{NAME}/credentials"][:2] == ("dir", 0o750)
    shipped(f"etc/{NAME}/config.yaml", "deploy/config.example.yaml", 0o640)
    shipped(f"etc/systemd/system/{NAME}.service", f"systemd/{NAME}.service", 0o644)
    shipped(f"usr/lib/sysusers.d/{NAME}.conf", f"deploy/sysusers.d/{NAME}.conf", 0o644)
    shipped(f"usr/lib/tmpfiles.d/{NAME}.conf", f"deploy/tmpfiles.d/{NAME}.conf", 0o644)
    # No chrony in this root: systemd-timesyncd's drop-in.
    shipped(f"etc/systemd/timesyncd.conf.d/{NAME}.conf", f"deploy/timesyncd/{NAME}.conf", 0o644)
    assert not (root / "etc" / "chrony").exists()
    for skipped in ("apt-get", "systemd-sysusers", "systemd-tmpfiles", "chown", "systemctl"):
        assert f"skipped in the staging root {root}: {skipped}" in first.stdout, skipped
    version = subprocess.run(
        [str(root / COMMAND), "--version"], capture_output=True, text=True, timeout=60
    )
    assert version.stdout.strip() == f"{NAME} {_version(checkout)}", version.stderr

    second = _install(checkout, root)
    assert _tree(root) == tree, "a second run changed the tree"
    assert f"{root}/etc/{NAME}/config.yaml exists: kept as it is" in second.stdout
    assert f"unchanged: {root}/etc/systemd/system/{NAME}.service" in second.stdout
    assert f"unchanged: {root}/etc/systemd/timesyncd.conf.d/{NAME}.conf" in second.stdout

    # A drop-in as an older version shipped it, never edited on the box, is brought up to date.
    drop_in = root / "etc" / "systemd" / "timesyncd.conf.d" / f"{NAME}.conf"
    for older in (drop_in, root / "opt" / NAME / "shipped" / "timesyncd.conf"):
        older.write_text("[Time]\n# as an older version shipped it\n")
    third = _install(checkout, root)
    assert f"{drop_in}: as an older version shipped it, never edited: replaced" in third.stdout
    assert _tree(root) == tree

    # Never edited, the time-sync drop-in goes with the code; the configuration stays.
    _install(checkout, root, "--uninstall")
    left = {rel for rel, (kind, _, _) in _tree(root).items() if kind != "dir"}
    assert left == {f"etc/{NAME}/config.yaml"}


def _record(command: Path, config: Path, storage: Path, log: Path) -> None:
    """The installed daemon records a few segments, then stops on SIGTERM."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(command), "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        wait_until(
            lambda: len(list((storage / "hall").rglob("*.mp4"))) >= 3 or proc.poll() is not None,
            40,
            "three segments",
        )
        assert proc.poll() is None, log.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def _run(command: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(command), *args], cwd=command.parent, capture_output=True, text=True, timeout=60
    )


@pytest.mark.timeout(300)
def test_an_upgrade_keeps_evidence_and_configuration_and_uninstall_keeps_them_too(
    pypi: None, checkout: Path, tmp_path: Path, short_dir: Path
) -> None:
    root = tmp_path / "root"
    (root / "etc" / "chrony").mkdir(parents=True)  # chrony is this root's NTP client
    _install(checkout, root)
    command = root / COMMAND
    chrony = root / "etc" / "chrony" / "conf.d" / f"{NAME}.conf"
    assert chrony.read_bytes() == (checkout / "deploy" / "chrony" / f"{NAME}.conf").read_bytes()
    assert not (root / "etc" / "systemd" / "timesyncd.conf.d").exists()

    # The integrator's work: the configuration, a credential and the centre's NTP server.
    conf = root / "etc" / NAME
    storage = root / "var" / "lib" / NAME
    config = write_config(
        conf / "config.yaml",
        storage,
        [{"id": "hall", "url": "sim://hall?width=320&height=240&fps=10&gop=1"}],
        storage={"segment_duration": "1s"},
        control={"socket": str(short_dir / "ctl.sock")},
    )
    credential = conf / "credentials" / "uplink"
    credential.write_text("not-a-real-password\n")
    credential.chmod(0o600)
    chrony.write_text(chrony.read_text() + "server ntp.centre.example iburst prefer\n")
    _record(command, config, storage, tmp_path / "daemon.log")

    kept = {
        "config": _sha256(config),
        "credential": _sha256(credential),
        "chrony": _sha256(chrony),
        **{f"key {k}": v for k, v in _files(storage / KEYS_DIRECTORY).items()},
    }
    assert "key signing.pem" in kept
    segments = {k: v for k, v in _files(storage).items() if k.endswith(".mp4")}
    assert len(segments) >= 3
    journal = audit_entries(storage / AUDIT_DIRECTORY)
    assert [e["event"] for e in journal][:2] == ["key_created", "daemon_started"]

    newer = _newer(checkout, tmp_path)
    upgrade = _install(newer, root)
    assert f"{NAME} {_version(checkout)} -> {_version(newer)}" in upgrade.stdout
    assert _run(command, "--version").stdout.strip() == f"{NAME} {_version(newer)}"
    unit = root / "etc" / "systemd" / "system" / f"{NAME}.service"
    assert unit.read_bytes() == (newer / "systemd" / f"{NAME}.service").read_bytes()
    assert f"{chrony}: edited on this box: kept as it is" in upgrade.stdout
    assert f"{config} exists: kept as it is" in upgrade.stdout
    after = {
        "config": _sha256(config),
        "credential": _sha256(credential),
        "chrony": _sha256(chrony),
        **{f"key {k}": v for k, v in _files(storage / KEYS_DIRECTORY).items()},
    }
    assert after == kept
    assert {k: v for k, v in _files(storage).items() if k.endswith(".mp4")} == segments

    # The upgraded command verifies what the old version recorded and journalled.
    verified = _run(command, "recordings", "verify", "--config", str(config), "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["counts"] == {"ok": len(segments)}
    audit = _run(command, "audit", "verify", "--config", str(config))
    assert audit.returncode == 0 and "journal verified" in audit.stdout, audit.stdout + audit.stderr
    assert audit_entries(storage / AUDIT_DIRECTORY)[: len(journal)] == journal

    evidence = _files(storage)
    before = _tree(root)
    _install(newer, root, "--uninstall", "--dry-run")
    assert _tree(root) == before, "a dry run changed the tree"
    gone = _install(newer, root, "--uninstall")
    for rel in (
        f"opt/{NAME}",
        f"usr/local/bin/{NAME}",
        f"etc/systemd/system/{NAME}.service",
        f"usr/lib/sysusers.d/{NAME}.conf",
        f"usr/lib/tmpfiles.d/{NAME}.conf",
    ):
        assert not os.path.lexists(root / rel), f"{rel} is still there"
    assert _files(storage) == evidence, "the uninstall touched the recordings or the journal"
    assert {"config": _sha256(config), "credential": _sha256(credential)} == {
        "config": kept["config"],
        "credential": kept["credential"],
    }
    assert _sha256(chrony) == kept["chrony"], "the edited chrony drop-in is the box's own"
    out = gone.stdout
    assert f"recordings         {storage} ({len(segments)} segment files)" in out
    assert f"audit journal      {storage}/{AUDIT_DIRECTORY}\n" in out
    assert f"signing keys       {storage}/{KEYS_DIRECTORY}\n" in out
    assert f"configuration      {config}\n" in out
    assert f"credentials        {conf}/credentials\n" in out
    assert f"time-sync drop-in  {chrony} (edited on this box)" in out


@pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: systemd-tmpfiles gives the directories to camera-gateway"
)
def test_sysusers_and_tmpfiles_entries_make_the_user_and_its_directories_in_a_root(
    tmp_path: Path,
) -> None:
    """What systemd does at the box's boot, done by systemd's own tools in a staging root."""
    tools = [shutil.which(t) for t in ("systemd-sysusers", "systemd-tmpfiles")]
    if None in tools:
        pytest.skip("needs systemd-sysusers and systemd-tmpfiles (Debian package systemd)")
    root = tmp_path / "root"
    for source, folder in (
        ("sysusers.d", "usr/lib/sysusers.d"),
        ("tmpfiles.d", "usr/lib/tmpfiles.d"),
    ):
        (root / folder).mkdir(parents=True)
        shutil.copy(ROOT / "deploy" / source / f"{NAME}.conf", root / folder)
    (root / "etc").mkdir()
    for tool, *args in (("systemd-sysusers",), ("systemd-tmpfiles", "--create")):
        result = subprocess.run(
            [tool, f"--root={root}", *args, f"{NAME}.conf"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
    users = [line.split(":") for line in (root / "etc" / "passwd").read_text().splitlines()]
    (user,) = [u for u in users if u[0] == NAME]
    uid, gid, home = int(user[2]), int(user[3]), user[5]
    assert home == f"/var/lib/{NAME}"
    for rel in (f"var/lib/{NAME}", f"var/lib/{NAME}/audit", f"var/lib/{NAME}/keys", f"run/{NAME}"):
        st = (root / rel).stat()
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o750, rel
        assert (st.st_uid, st.st_gid) == (uid, gid), rel
