"""The storage thread's sealing pass: every indexed segment chained in its camera's seal chain.

Each turn chains the segments indexed since the last one. Their hash was taken as they were
written; a segment that came without one (repaired after a crash, found by a rebuild of the
index) is hashed here, at most :data:`SEAL_BYTES_PER_TURN` a turn. A row whose hash the index
lost but whose chain already holds it (a rebuilt index) takes the chain's entry back instead of
being sealed twice. Retention's evictions are chained here too.

While the key or the chain cannot be used, rows wait (recording goes on) and :attr:`error`
says why; they are sealed once it works again.
"""

from __future__ import annotations

import logging
from pathlib import Path

from gateway.integrity.journal import JournalError
from gateway.integrity.keys import SigningKeyError
from gateway.integrity.seal import ChainRecord, Sealer, hash_file
from gateway.storage.index import Index, QuarantinedFile
from gateway.storage.record import Segment
from gateway.storage.retention import Eviction
from gateway.telemetry.events import EventSink

__all__ = ["SEAL_BYTES_PER_TURN", "SealingPass"]

log = logging.getLogger(__name__)

SEAL_BYTES_PER_TURN = 256 * 1024 * 1024
"""Bytes of unhashed segments read per storage turn: about half a second of disk, so that
retention and indexing go on between."""


class SealingPass:
    def __init__(self, root: Path, events: EventSink | None, sealer: Sealer) -> None:
        self.root = root
        self.events = events
        self.sealer = sealer
        self.error: str | None = None
        """Why segments are not being sealed, or None."""
        self._records: dict[str, dict[str, ChainRecord]] = {}
        """Per camera, what its chain holds: loaded only for rows whose hash the index lost,
        and dropped once every row is sealed."""

    def run(self, index: Index, budget: int = SEAL_BYTES_PER_TURN) -> None:
        rows = index.unsealed()
        if not rows:
            self._records.clear()
            return
        try:
            for row in rows:
                sha256 = row.sha256
                if sha256 is None:
                    known = self._known(row)
                    if known is not None and known.sha256 is not None:
                        index.set_sealed(row.path, known.seq, known.sha256)
                        continue
                    if budget <= 0:
                        break
                    try:
                        sha256, size = hash_file(row.resolve(self.root))
                    except FileNotFoundError:
                        continue  # gone: the next reconcile drops the row
                    budget -= size
                seq = self.sealer.seal(
                    row.camera,
                    row.path,
                    sha256=sha256,
                    size=row.bytes,
                    start=row.start,
                    end=row.end,
                    frames=row.frames,
                    flags=row.flags,
                    clock_synced=row.clock_synced,
                )
                index.set_sealed(row.path, seq, sha256)
        except (SigningKeyError, JournalError) as exc:
            reason = f"segments not sealed: {exc.reason}"
            if reason != self.error:
                log.error("storage: %s (recording goes on; sealed once it is fixed)", reason)
                if self.events is not None:
                    self.events.emit("seal_error", reason=reason)
            self.error = reason
            return
        if self.error is not None:
            log.info("storage: sealing segments again")
            self.error = None

    def evicted(self, eviction: Eviction) -> None:
        segment = eviction.segment
        if isinstance(segment, QuarantinedFile):
            return
        try:
            self.sealer.evicted(
                segment.camera, segment.path, sha256=segment.sha256, reason=eviction.reason
            )
        except JournalError as exc:
            log.error("storage: eviction of %s not chained: %s", segment.path, exc.reason)

    def _known(self, row: Segment) -> ChainRecord | None:
        records = self._records.get(row.camera)
        if records is None:
            records = self.sealer.records(row.camera)
            self._records[row.camera] = records
        record = records.get(row.path)
        return record if record is not None and record.evicted is None else None
