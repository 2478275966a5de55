"""The control socket's protocol and limits: one JSON request per line, one JSON answer per
line; who is asking (from ``SO_PEERCRED``); the bounds every client is held to."""

from __future__ import annotations

import json
import pwd
from dataclasses import dataclass
from typing import Any

from gateway.text import clip, display

__all__ = [
    "ANSWER_DEADLINE",
    "EVICT_AFTER",
    "HANDLER_THREADS",
    "MAX_ANSWER",
    "MAX_CONNECTIONS",
    "MAX_PER_PROCESS",
    "MAX_REQUEST",
    "REQUEST_DEADLINE",
    "ControlError",
    "Peer",
    "encode",
    "short",
]

MAX_CONNECTIONS = 16
"""Connections open at once, so the socket never holds more than 16 descriptors, whatever
clients do: the command line opens one per command and closes it within milliseconds, and 16 is
more than operators at one box ever type at once."""

REQUEST_DEADLINE = 5.0
"""Seconds from accept to the complete request line. The command line sends its line at once
(well under a millisecond); 5 s is room for a loaded box and cuts a client trickling one byte
every few seconds, which would otherwise hold its slot for ever."""

ANSWER_DEADLINE = 5.0
"""Seconds to deliver an answer to a client that does not read it; then it is dropped."""

EVICT_AFTER = 1.0
"""When every slot is taken, a connection accepted longer ago than this that has still not sent
its request line is cut to make room for the new one: the command line sends its request in
well under a millisecond, so only an idle or trickling client loses its slot."""

MAX_PER_PROCESS = 4
"""Connections one client process may hold at once. The command line holds one; a flood from
one process is refused past this at once, and cannot take the slots other processes need."""

HANDLER_THREADS = 4
"""Threads carrying out requests: a forward start waits for the journal's fsync (milliseconds,
longer on a loaded SD card) and a stop for the camera's link to close (up to its timeout), so a
few let a status answer meanwhile; an export runs in a child process and holds one only while
it waits for it."""

MAX_REQUEST = 64 * 1024
"""Bytes of a request line: a forward command is under 1 KiB."""
MAX_ANSWER = 16 * 1024 * 1024
"""Bytes of an answer the command line reads: a status answer is about 1 KiB per camera."""


class ControlError(Exception):
    """The daemon could not be reached, or answered something unreadable."""


@dataclass(frozen=True, slots=True)
class Peer:
    pid: int
    uid: int

    @property
    def user(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return str(self.uid)

    def describe(self) -> str:
        return f"local user {self.user} (uid {self.uid}, pid {self.pid})"


def encode(answer: dict[str, Any]) -> bytes:
    """One answer (or request) as its line on the socket."""
    return json.dumps(answer).encode() + b"\n"


def short(error: Exception) -> str:
    """An error as it may be shown to a client: printable, at most 200 characters."""
    return clip(display(str(error)), 200)
