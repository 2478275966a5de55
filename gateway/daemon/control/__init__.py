"""The local control socket: how the command line talks to the running daemon (the protocol
and its limits in :mod:`~gateway.daemon.control.protocol`, the server, the client).

A Unix stream socket (mode 0660): one JSON request per line, one JSON answer per line. The
daemon learns who is asking from the kernel (``SO_PEERCRED``), not from the request, and
records it with every forward command. Commands: ``forward`` and ``status``.

Any local process allowed on the socket is a client, and none may starve the daemon:

- one thread reads every connection (non-blocking, with ``epoll``), so an idle connection costs
  one descriptor and no thread, and requests are carried out on :data:`HANDLER_THREADS` threads;
- at most :data:`MAX_CONNECTIONS` connections are open at once, and at most
  :data:`MAX_PER_PROCESS` from one client process (``SO_PEERCRED``); a connection over either
  bound is answered ``too many connections`` and closed at once;
- when the table is full, a newcomer may take the place of an idle connection (one with no
  request line yet) of a process holding more, or of one idle for :data:`EVICT_AFTER`, so the
  command line still gets through a flood;
- each connection must send its whole request line within :data:`REQUEST_DEADLINE` of being
  accepted, however its bytes trickle in;
- a flood is logged once, then once a minute with a count.
"""

from gateway.daemon.control.client import call
from gateway.daemon.control.protocol import (
    EVICT_AFTER,
    HANDLER_THREADS,
    MAX_CONNECTIONS,
    MAX_PER_PROCESS,
    REQUEST_DEADLINE,
    ControlError,
    Peer,
)
from gateway.daemon.control.server import ControlServer

__all__ = [
    "EVICT_AFTER",
    "HANDLER_THREADS",
    "MAX_CONNECTIONS",
    "MAX_PER_PROCESS",
    "REQUEST_DEADLINE",
    "ControlError",
    "ControlServer",
    "Peer",
    "call",
]
