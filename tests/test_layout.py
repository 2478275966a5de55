"""The package's layout holds: no import cycle between its packages, and a module longer than
400 lines says why at its top."""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from helpers import ROOT

PACKAGE = ROOT / "gateway"
LONG = 400
REASON = "Longer than 400 lines:"


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(module: str) -> str:
    """``gateway.storage.index`` -> ``gateway.storage``; top-level modules are their own."""
    return ".".join(module.split(".")[:2])


def imports_between_packages() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        source = _package(_module(path))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                target = _package(name)
                if name.startswith("gateway.") and target != source:
                    edges[source].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_packages() -> None:
    edges = imports_between_packages()
    assert edges, "no imports found: the scan is broken"
    assert "gateway.storage" in edges["gateway.recorder"], "the scan sees a known import"
    assert cycles(edges) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def long_modules_without_reason() -> list[str]:
    """Modules over :data:`LONG` lines whose docstring does not start by saying why."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= LONG:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if not docstring.startswith(REASON):
            found.append(f"{path.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    return found


def test_a_module_over_400_lines_says_why_at_its_top() -> None:
    assert long_modules_without_reason() == []


def test_the_length_check_sees_long_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "gateway"
    package.mkdir()
    (package / "long.py").write_text('"""Long."""\n' + "x = 1\n" * (LONG + 1))
    (package / "justified.py").write_text(f'"""{REASON} one loop."""\n' + "x = 1\n" * (LONG + 1))
    (package / "short.py").write_text('"""Short."""\nx = 1\n')
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert long_modules_without_reason() == [f"gateway/long.py ({LONG + 2} lines)"]


def test_a_camera_worker_loads_no_signing_library() -> None:
    """Signing is the supervisor's: through the storage area's module, the fork server and so
    every worker loaded ``cryptography`` and the journals for nothing (9 MiB more resident at
    import)."""
    import subprocess

    probe = "import sys, gateway.daemon.workers.process; print(sorted(sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    modules = done.stdout
    assert "gateway.daemon.workers.process" in modules, "the probe imported the worker"
    assert "'cryptography" not in modules
    assert "'gateway.integrity" not in modules


def test_the_supervisor_loads_no_media_library() -> None:
    """Decoding a camera's bytes is its worker's: the supervisor, which holds snapshots and
    the integrity states, must not load FFmpeg or OpenCV (memory, and a crash there would be
    the whole daemon's)."""
    import subprocess

    probe = "import sys, gateway.daemon.service, gateway.daemon.cli; print(sorted(sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    modules = done.stdout
    assert "gateway.daemon.service" in modules, "the probe imported the supervisor"
    assert "gateway.watch.snapshot" in modules, "the probe reached the snapshots"
    for library in ("av", "cv2", "numpy", "gateway.analysis", "gateway.watch.render"):
        assert f"'{library}'" not in modules, library
