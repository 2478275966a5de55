"""The fork server: one small process that did the heavy imports once and forks each worker.

Started by the supervisor as ``python -m gateway.daemon.workers.forkserver FD ...`` (exec'd, so it
inherits none of the supervisor's threads or locks). It imports the worker's code (PyAV and
FFmpeg, NumPy, the recorder, the publishers), freezes the garbage collector's view of those
objects so that forked children share their pages, then waits. For each request it forks a
worker that starts at once, with nothing left to import, and hands the supervisor the worker's
pid and a pidfd (so a signal can never reach a recycled pid). It reaps its children and says
how each one ended. When the supervisor goes away, the fork server and every worker die with it
(``PR_SET_PDEATHSIG``): no camera process is ever left behind.

The supervisor's side is :class:`ForkServer`; it is used from one thread only.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from gateway.daemon.workers.channel import ChannelError, recv_fds, send_fds

__all__ = ["ForkServer", "ForkServerError", "Spawned", "exit_reason"]

log = logging.getLogger(__name__)

_MAX_REQUEST = 1024 * 1024
_PR_SET_PDEATHSIG = 1
READY_TIMEOUT = 60.0
"""Seconds allowed for the fork server's imports (PyAV and FFmpeg take ~1 s on the box)."""
SPAWN_TIMEOUT = 10.0
WORKER_NICE = 10
"""Scheduling niceness of the fork server and its workers. The supervisor, at 0, then keeps
CPU when the box is overloaded (80 busy workers would otherwise leave it a 1/81 share, and its
stall would look like every worker's silence); with no overload, niceness changes nothing."""


class ForkServerError(Exception):
    """The fork server could not start, or stopped answering."""


@dataclass(frozen=True, slots=True)
class Spawned:
    pid: int
    pidfd: int
    """Owned by the caller, who closes it once the worker is gone."""


def exit_reason(status: int) -> str:
    """``exited with status 1``, ``killed by SIGKILL``, from a waitpid status."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"killed by {name}"
    if os.WIFEXITED(status):
        return f"exited with status {os.WEXITSTATUS(status)}"
    return f"ended (status {status:#x})"


# -- supervisor side ----------------------------------------------------------------------------


class ForkServer:
    """The supervisor's handle on the fork server process."""

    def __init__(self, *, verbose: bool = False, site: str | None = None) -> None:
        self._verbose = verbose
        self._site = site
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._exits: deque[tuple[int, int]] = deque()
        self._next_request = 0
        self.starts = 0

    @property
    def sock(self) -> socket.socket | None:
        """Readable when the fork server reports an exit or has died (for a selector)."""
        return self._sock

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the fork server and wait until its imports are done."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        command = [sys.executable, "-m", "gateway.daemon.workers.forkserver", str(theirs.fileno())]
        command += ["--parent", str(os.getpid())]
        if self._verbose:
            command.append("--verbose")
        if self._site:
            command += ["--site", self._site]
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        try:
            # Our own interpreter and module, an argument list: no shell, nothing from outside.
            self._proc = subprocess.Popen(command, pass_fds=(theirs.fileno(),), env=env)  # noqa: S603
        finally:
            theirs.close()
        self._sock = ours
        self.starts += 1
        ours.settimeout(READY_TIMEOUT)
        try:
            message = self._read()
        except (OSError, ForkServerError) as exc:
            self.close()
            raise ForkServerError(f"the fork server did not start: {exc}") from None
        if message[0] != "ready":
            self.close()
            raise ForkServerError(f"the fork server said {message[0]!r} instead of ready")
        log.debug("fork server %d ready", self._proc.pid)

    def spawn(self, target: str, *args: Any) -> Spawned:
        """Fork a worker running ``target(channel, *args)``; ``target`` is ``module:function``.

        The worker's end of its channel is ``args[0]`` when it is a socket: it is passed as a
        descriptor, and the caller closes its own copy afterwards.
        """
        if self._sock is None or not self.alive:
            raise ForkServerError("the fork server is not running")
        channel, rest = args[0], args[1:]
        self._next_request += 1
        request = pickle.dumps(("spawn", self._next_request, target, rest))
        self._sock.settimeout(SPAWN_TIMEOUT)
        try:
            send_fds(self._sock, request, [channel.fileno()])
            while True:
                message, fds = self._read_with_fds()
                if message[0] == "exited":
                    self._exits.append((message[1], message[2]))
                    continue
                if message[0] == "spawned" and message[1] == self._next_request and fds:
                    return Spawned(pid=message[2], pidfd=fds[0])
                for fd in fds:
                    os.close(fd)
                raise ForkServerError(f"unexpected answer {message[0]!r} to a spawn request")
        except (OSError, ChannelError) as exc:
            raise ForkServerError(f"the fork server stopped answering: {exc}") from None

    def exits(self) -> list[tuple[int, int]]:
        """(pid, waitpid status) of workers that ended since the last call; reads what the
        fork server sent without waiting. Raises ForkServerError if it has died."""
        if self._sock is None:
            raise ForkServerError("the fork server is not running")
        self._sock.settimeout(0)
        try:
            while True:
                try:
                    message, fds = self._read_with_fds()
                except (BlockingIOError, TimeoutError):
                    break
                for fd in fds:
                    os.close(fd)
                if message[0] == "exited":
                    self._exits.append((message[1], message[2]))
        except (OSError, ChannelError) as exc:
            raise ForkServerError(f"the fork server has gone: {exc}") from None
        found = list(self._exits)
        self._exits.clear()
        return found

    def _read(self) -> tuple[Any, ...]:
        message, fds = self._read_with_fds()
        for fd in fds:
            os.close(fd)
        return message

    def _read_with_fds(self) -> tuple[tuple[Any, ...], list[int]]:
        assert self._sock is not None  # noqa: S101 - for mypy: start() set it
        data, fds = recv_fds(self._sock, 65536, 1)
        if not data:
            raise ForkServerError("the fork server closed its socket")
        # From the fork server, our own process: a worker closes this socket before running.
        message = pickle.loads(data)  # noqa: S301
        if not isinstance(message, tuple) or not message:
            raise ForkServerError("unreadable message from the fork server")
        return message, fds

    def close(self, timeout: float = 2.0) -> None:
        """Stop the fork server; any worker still running is killed with it."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


# -- the fork server process ----------------------------------------------------------------


def _serve(sock: socket.socket) -> None:
    """Fork a worker for each request; report each child's end; stop when the supervisor goes."""
    server_pid = os.getpid()
    children: set[int] = set()
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    try:
        while True:
            events = dict(poller.poll(1000))
            if wake_r in events:
                _drain(wake_r)
            for pid, status in _reap(children):
                _send(sock, ("exited", pid, status))
            if sock.fileno() in events and not _answer(sock, server_pid, children, wake_r, wake_w):
                break  # the supervisor has gone: so do we, and our workers
    finally:
        _kill_all(children)


def _answer(
    sock: socket.socket, server_pid: int, children: set[int], wake_r: int, wake_w: int
) -> bool:
    """Serve one request; False once the supervisor has closed its end."""
    try:
        data, fds = recv_fds(sock, _MAX_REQUEST, 1)
    except (OSError, ChannelError):
        return False
    if not data:
        return False
    # From the supervisor, our parent: a worker closes this socket before running.
    request = pickle.loads(data)  # noqa: S301
    if request[0] != "spawn" or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        return True
    _, request_id, target, args = request
    pid = os.fork()
    if pid == 0:
        os.close(wake_r)
        os.close(wake_w)
        _child(sock, server_pid, fds[0], target, args)
    os.close(fds[0])
    children.add(pid)
    pidfd = os.pidfd_open(pid)
    try:
        send_fds(sock, pickle.dumps(("spawned", request_id, pid)), [pidfd])
    except OSError:
        return False
    finally:
        os.close(pidfd)
    return True


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 512):
            pass


def _kill_all(children: set[int]) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2
    while children and time.monotonic() < deadline:
        _reap(children)
        time.sleep(0.01)


def _reap(children: set[int]) -> list[tuple[int, int]]:
    ended = []
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        children.discard(pid)
        ended.append((pid, status))
    return ended


def _send(sock: socket.socket, message: tuple[Any, ...]) -> None:
    with contextlib.suppress(OSError):
        sock.send(pickle.dumps(message))


def _child(
    sock: socket.socket, server_pid: int, fd: int, target: str, args: tuple[Any, ...]
) -> None:
    """In the forked worker: cut ties with the fork server's state, run, and exit.

    A forked child ends with ``os._exit``: the exit handlers and buffers it inherited belong to
    the fork server.
    """
    code = 70
    try:
        _die_with_parent(server_pid)
        sock.close()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        module_name, _, function = target.partition(":")
        module = sys.modules.get(module_name) or __import__(module_name, fromlist=[function])
        code = int(getattr(module, function)(socket.socket(fileno=fd), *args))
    except BaseException:
        logging.getLogger(target).exception("worker failed")
    finally:
        logging.shutdown()
        os._exit(code)


def _die_with_parent(parent: int) -> None:
    """Get SIGKILL when the parent dies; exit at once if it already has."""
    from gateway.host.libc import libc

    lib = libc()
    if lib is not None:
        lib.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="camera-gateway fork server")
    parser.add_argument("fd", type=int)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--site")
    args = parser.parse_args(argv)
    _die_with_parent(args.parent)
    from gateway.host.memory import limit_arenas

    limit_arenas()  # before any thread: inherited by every worker
    # The supervisor orchestrates every stop: Ctrl-C in a terminal or a SIGTERM to the whole
    # group must not end the workers before their segments are finalised.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sock = socket.socket(fileno=args.fd)
    from gateway.daemon.logsetup import setup_logging
    from gateway.host.threads import name_process

    setup_logging(args.verbose, site=args.site)
    name_process("cgw-forkserver")
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICE)  # inherited by every worker
    import gc

    import gateway.daemon.workers.process  # noqa: F401  (the heavy imports, done once)

    if threading.active_count() != 1 or len(os.listdir("/proc/self/task")) != 1:
        log.warning("fork server has %d threads: forking may be unsafe", threading.active_count())
    gc.collect()
    gc.freeze()  # the imported objects stay shared with every worker instead of being copied
    _send(sock, ("ready", os.getpid()))
    _serve(sock)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
