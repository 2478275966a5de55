"""The storage's one error type, importable without the index or retention."""

from __future__ import annotations

__all__ = ["StorageError"]


class StorageError(Exception):
    """The storage cannot take a new segment now; ``reason`` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
