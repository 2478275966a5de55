"""The one error of a push: what failed, in words safe to show."""

from __future__ import annotations

__all__ = ["PushError"]


class PushError(Exception):
    """A push failed; ``reason`` is short and safe to show, ``auth`` marks refused credentials
    (retried slowly: retrying at once will not fix them)."""

    def __init__(self, reason: str, *, auth: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.auth = auth
