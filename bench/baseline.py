"""The gateway as it was at a git commit, to benchmark it side by side with the working tree.

The box drifts by about 20 % from one run to the next, so a change of the daemon is measured
against its previous version within the same run, with the same cameras, centre and windows.
The previous version is a temporary git worktree of that commit; the same venv's Python runs
its ``gateway`` package (``PYTHONPATH`` and the working directory point at the worktree, ahead of
the venv's editable install), so only the daemon's code differs, not its libraries.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from common import ROOT


@dataclass(frozen=True, slots=True)
class Baseline:
    ref: str
    """As given: a commit, a branch, ``HEAD~3``..."""
    commit: str
    path: Path
    """The worktree."""

    @property
    def name(self) -> str:
        return f"gateway@{self.commit[:7]}"

    def env(self) -> dict[str, str]:
        """The environment that makes ``python -m gateway`` run the worktree's code (with the
        worktree as the working directory too: ``-m`` puts it first on the path)."""
        return {**os.environ, "PYTHONPATH": str(self.path)}


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


@contextmanager
def worktree(ref: str) -> Iterator[Baseline]:
    """A detached worktree of ``ref`` under the temporary directory, removed on leaving,
    whatever happened meanwhile."""
    try:
        commit = _git("rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}")
    except RuntimeError as e:
        raise RuntimeError(f"--baseline {ref}: not a commit of {ROOT} ({e})") from e
    path = Path(tempfile.mkdtemp(prefix=f"cgw-baseline-{commit[:12]}-"))
    try:
        _git("worktree", "add", "--quiet", "--detach", str(path), commit)
        baseline = Baseline(ref, commit, path)
        found = subprocess.run(
            [sys.executable, "-c", "import gateway; print(gateway.__file__)"],
            capture_output=True,
            text=True,
            env=baseline.env(),
            cwd=path,
            check=False,
        )
        if not found.stdout.strip().startswith(f"{path}/"):
            raise RuntimeError(
                f"--baseline {ref}: Python imports the gateway from "
                f"{found.stdout.strip() or found.stderr.strip()!r}, not from {path}"
            )
        yield baseline
    finally:
        try:
            _git("worktree", "remove", "--force", str(path))
        except RuntimeError:
            shutil.rmtree(path, ignore_errors=True)
            _git("worktree", "prune")
