"""An export run for the daemon in a process of its own (``camera-gateway export-child``).

The daemon hands the request over on the child's standard input and reads its answer, one JSON
object, from its standard output. The child runs at a lower priority, reads the index (the
daemon stays its one writer), and journals and holds like any export.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["EXPORT_TIMEOUT", "child_main", "run_child_export"]

EXPORT_TIMEOUT = 4 * 3600.0
"""Longest an export may take (a day of 4K video takes minutes); the child is killed past it."""
CHILD_NICE = 10


def run_child_export(config: Path, request: dict[str, Any], via: str) -> dict[str, Any]:
    try:
        done = subprocess.run(  # noqa: S603 - our own interpreter and module, no shell
            [sys.executable, "-m", "gateway", "export-child", "--config", str(config)],
            input=json.dumps({"request": request, "via": via}),
            capture_output=True,
            text=True,
            timeout=EXPORT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "message": f"the export took over {EXPORT_TIMEOUT:.0f} s: stopped"}
    except OSError as exc:
        return {"ok": False, "message": f"cannot start the export: {exc.strerror or exc}"}
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except ValueError:
        answer = None
    if isinstance(answer, dict):
        return answer
    tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
    return {"ok": False, "message": f"the export failed: {tail[0][:300]}"}


def child_main(config_path: Path) -> int:
    """The child's side: one request from stdin, one answer to stdout."""
    from gateway.config import load_config
    from gateway.evidence.box import Integrity
    from gateway.evidence.desk import EvidenceDesk
    from gateway.storage.index import Index
    from gateway.storage.store import INDEX_NAME

    os.nice(CHILD_NICE)
    try:
        message = json.loads(sys.stdin.read(1024 * 1024))
        request, via = dict(message["request"]), str(message["via"])
    except (ValueError, KeyError, TypeError):
        print(json.dumps({"ok": False, "message": "bad request to the export child"}))
        return 1
    config = load_config(config_path)
    index = Index(config.storage.path / INDEX_NAME, readonly=True)
    try:
        answer = EvidenceDesk(config, index, Integrity.of(config)).handle(request, via=via)
    finally:
        index.close()
    print(json.dumps(answer))
    return 0
