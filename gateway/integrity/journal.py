"""A signed, hash-chained journal of JSON lines: the audit journal and each camera's seal chain.

Each entry carries a sequence number, its UTC time, ``prev`` (the SHA-256 of the previous entry's
line) and ``sig``, the box key's Ed25519 signature over the entry without ``sig``; lines are
canonical JSON (sorted keys, no spaces), so an entry's hash is the hash of its line as stored.
Editing, removing, inserting or reordering an entry breaks the chain; removing the tail is only
detectable against a head kept elsewhere (published over MQTT, or written down): :func:`verify`
takes one.

Entries go to one file per month (``<name>-YYYY-MM.jsonl``), appended with ``O_APPEND`` under an
exclusive ``flock`` (the daemon and the command line may both write) and ``fsync``-ed before
:meth:`SignedJournal.append` returns. Files older than the retention are removed whole; a
``journal_expired`` entry then names the last removed entry, which the first kept one must follow.

Without a usable key an entry is still written, chained, with ``"sig": null``, and the caller is
told (``signed`` is false): the journal is never a reason for recording to stop, and verification
reports such entries as unsigned.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.clock import parse_utc_iso, utc_iso
from gateway.host.durable import write_all
from gateway.integrity.keys import Signer, SigningKeyError

__all__ = [
    "EXPIRED",
    "GENESIS",
    "Head",
    "JournalError",
    "SignedJournal",
    "canonical",
    "entry_hash",
    "signed_part",
]

GENESIS = "0" * 64
"""``prev`` of the very first entry."""
EXPIRED = "journal_expired"
_TAIL_READ = 256 * 1024
"""Bytes read back from a file's end to find its last entry (an entry is well under 64 KiB)."""
_MAX_LINE = 64 * 1024
_RESERVED = frozenset({"seq", "time", "prev", "event", "key", "sig"})


class JournalError(Exception):
    """The journal could not be written or read; ``reason`` says where and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def canonical(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


def signed_part(entry: dict[str, Any]) -> bytes:
    return canonical({k: v for k, v in entry.items() if k != "sig"})


@dataclass(frozen=True, slots=True)
class Head:
    """The last entry of a journal: what the centre keeps a copy of."""

    seq: int
    hash: str
    time: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "time": self.time}


class SignedJournal:
    """One journal: ``<folder>/<name>-YYYY-MM.jsonl``."""

    def __init__(
        self,
        folder: Path,
        name: str,
        signer: Callable[[], Signer],
        *,
        retention: float | None = None,
    ) -> None:
        self.folder = folder
        self.name = name
        self._signer = signer
        self.retention = retention
        self._lock = threading.Lock()
        self._head: Head | None = None
        self._head_stamp: tuple[str, int] | None = None
        """(newest file, its size) when ``_head`` was read: another writer changes the size."""
        self.unsigned = 0
        """Entries written without a signature by this process (the key was unusable)."""
        self.last_key_error: str | None = None

    # -- writing -------------------------------------------------------------------------------

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Write one entry durably and return it; raise :class:`JournalError` if it cannot be."""
        reserved = _RESERVED.intersection(fields)
        if reserved:
            raise ValueError(f"journal fields {sorted(reserved)} are set by the journal itself")
        now = time.time()
        with self._lock:
            try:
                self.folder.mkdir(parents=True, exist_ok=True, mode=0o750)
                path = self.folder / f"{self.name}-{_month(now)}.jsonl"
                fd = os.open(
                    path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640
                )
            except OSError as exc:
                raise JournalError(f"cannot write {self.folder}: {exc.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                _drop_torn_tail(fd)
                head = self._tail_locked(fd, path)
                entry: dict[str, Any] = {
                    "seq": head.seq + 1,
                    "time": utc_iso(now),
                    "prev": head.hash,
                    "event": event,
                    **fields,
                }
                entry["sig"] = self._sign(entry)
                line = canonical(entry)
                if len(line) >= _MAX_LINE:
                    raise JournalError(f"entry {event} is too large ({len(line)} bytes)")
                write_all(fd, line + b"\n")
                os.fsync(fd)
                size = os.fstat(fd).st_size
            except OSError as exc:
                raise JournalError(f"cannot write {path}: {exc.strerror}") from None
            finally:
                os.close(fd)
            self._head = Head(entry["seq"], entry_hash(entry), entry["time"])
            self._head_stamp = (str(path), size)
        return entry

    def _sign(self, entry: dict[str, Any]) -> str | None:
        try:
            signer = self._signer()
        except SigningKeyError as exc:
            self.unsigned += 1
            self.last_key_error = exc.reason
            return None
        self.last_key_error = None
        entry["key"] = signer.fingerprint
        return signer.sign_b64(signed_part(entry))

    def _tail_locked(self, fd: int, path: Path) -> Head:
        """The last entry, in this month's file or the latest earlier one."""
        size = os.fstat(fd).st_size
        if size:
            last = _last_entry(fd, size)
            if last is not None:
                return last
        for older in reversed(self.files()):
            if older == path:
                continue
            try:
                rfd = os.open(older, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                last = _last_entry(rfd, os.fstat(rfd).st_size)
            finally:
                os.close(rfd)
            if last is not None:
                return last
        return Head(0, GENESIS)

    def expire(self, now: float | None = None) -> list[Path]:
        """Remove whole monthly files whose newest entry is older than the retention."""
        if self.retention is None:
            return []
        now = time.time() if now is None else now
        files = self.files()
        removed: list[Path] = []
        for path in files[:-1]:  # never the file being written
            head = _file_head(path)
            if head is None:
                continue
            newest = _parse_time(head.time)
            if newest is None or now - newest < self.retention:
                break
            self.append(EXPIRED, file=path.name, last_seq=head.seq, last_hash=head.hash)
            try:
                path.unlink()
            except OSError as exc:
                raise JournalError(f"cannot remove {path}: {exc.strerror}") from None
            removed.append(path)
        return removed

    # -- reading -------------------------------------------------------------------------------

    def files(self) -> list[Path]:
        pattern = re.compile(re.escape(self.name) + r"-\d{4}-\d{2}\.jsonl")
        try:
            names = sorted(p for p in os.listdir(self.folder) if pattern.fullmatch(p))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise JournalError(f"cannot read {self.folder}: {exc.strerror}") from None
        return [self.folder / n for n in names]

    def head(self) -> Head:
        """The last entry (re-read when another process appended since)."""
        files = self.files()
        if not files:
            return Head(0, GENESIS)
        try:
            stamp = (str(files[-1]), os.stat(files[-1]).st_size)
        except OSError:
            stamp = None
        if self._head is not None and stamp is not None and stamp == self._head_stamp:
            return self._head
        for path in reversed(files):
            head = _file_head(path)
            if head is not None:
                self._head, self._head_stamp = head, stamp
                return head
        return Head(0, GENESIS)

    def entries(self) -> Iterator[tuple[Path, int, str, dict[str, Any] | None]]:
        """(file, line number, raw line, entry or None when the line does not parse)."""
        for path in self.files():
            try:
                stream = path.open("rb")
            except OSError as exc:
                raise JournalError(f"cannot read {path}: {exc.strerror}") from None
            with stream:
                for number, raw in enumerate(stream, 1):
                    text = raw.decode("utf-8", "replace").rstrip("\n")
                    try:
                        value = json.loads(text)
                    except ValueError:
                        yield path, number, text, None
                        continue
                    yield path, number, text, value if isinstance(value, dict) else None


def _month(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m")


def _parse_time(text: str) -> float | None:
    try:
        return parse_utc_iso(text)
    except ValueError:
        return None


def _drop_torn_tail(fd: int) -> None:
    """Cut an incomplete last line (a write cut by a power failure, never reported done)."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    start = max(0, size - _TAIL_READ)
    data = os.pread(fd, size - start, start)
    cut = data.rfind(b"\n")
    os.ftruncate(fd, start + cut + 1 if cut >= 0 else start)


def _last_entry(fd: int, size: int) -> Head | None:
    start = max(0, size - _TAIL_READ)
    data = os.pread(fd, size - start, start)
    for raw in reversed(data.split(b"\n")):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            continue  # a torn last line (power cut): the chain goes on from the last whole one
        if isinstance(value, dict) and isinstance(value.get("seq"), int):
            return Head(value["seq"], entry_hash(value), str(value.get("time", "")))
    return None


def _file_head(path: Path) -> Head | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return _last_entry(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)
