"""Keeping the storage's index usable: a damaged, deleted or replaced index is noticed, set aside
(never deleted) and replaced by a new one, rebuilt from the segment files on the storage thread
while recording goes on; retention waits for the rebuild."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from gateway.storage.index import Index, set_aside
from gateway.storage.quarantine import Quarantine
from gateway.storage.recovery import reconcile
from gateway.telemetry.events import EventBus

__all__ = ["IndexKeeper"]

log = logging.getLogger(__name__)


class IndexKeeper:
    """The index the storage uses now, and whether it waits for a rebuild."""

    def __init__(
        self, root: Path, index: Index, quarantine: Quarantine, events: EventBus | None
    ) -> None:
        self.root = root
        self.index = index
        self.quarantine = quarantine
        self._events = events
        self._id: tuple[int, int] | None = None
        """(device, inode) of the index file we opened: a deleted or replaced one is noticed."""
        self.rebuild_due = False

    def opened(self) -> None:
        """The index was reconciled with the files: watch its file from now on."""
        self._id = _file_id(self.index.path)

    def replace(self, why: str) -> None:
        """Set a damaged or vanished index aside and start a new one, to be rebuilt from the
        files by :meth:`rebuild`."""
        path = self.index.path
        self.index.close()
        aside: Path | None = None
        if path.exists():
            try:
                aside = set_aside(path)
            except OSError as exc:
                log.error("index %s is %s and cannot be set aside: %s", path, why, exc)
        self.index = Index(path)
        self.quarantine.index = self.index
        self.rebuild_due = True
        log.error(
            "index %s is %s%s; rebuilding it from the segment files while recording goes on",
            path,
            why,
            f" (kept as {aside.name})" if aside is not None else "",
        )
        if self._events is not None:
            self._events.emit("storage_error", reason=f"index {why}; rebuilding it")

    def rebuild(self) -> None:
        started = time.monotonic()
        report = reconcile(self.root, self.index, quarantine=self.quarantine)
        self.rebuild_due = False
        self._id = _file_id(self.index.path)
        log.info(
            "index rebuilt from the files in %.1f s: %s",
            time.monotonic() - started,
            report.summary(),
        )

    def check(self) -> None:
        """An index deleted or replaced under the running daemon is noticed and replaced."""
        if self.rebuild_due or self._id is None:
            return
        if _file_id(self.index.path) != self._id:
            self.replace("gone (deleted or replaced while running)")


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino
