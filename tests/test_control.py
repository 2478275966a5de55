"""The control socket under hostile local clients: a flood of idle connections, a client that
trickles its request, malformed lines. The daemon's descriptors and threads stay bounded, and
the command line still gets its answer."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.daemon.control import (
    EVICT_AFTER,
    HANDLER_THREADS,
    MAX_CONNECTIONS,
    MAX_PER_PROCESS,
    REQUEST_DEADLINE,
    ControlServer,
    Peer,
    call,
)

FLOOD = r"""
import json, resource, selectors, socket, sys, time

path, count, churn = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count + 256)), hard))


def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.setblocking(False)
    return s


def answers(socks, wait):
    # (refused, cut, silent): what the server said to each socket within `wait`.
    selector = selectors.DefaultSelector()
    for s in socks:
        selector.register(s, selectors.EVENT_READ)
    refused, cut, deadline = [], [], time.monotonic() + wait
    while time.monotonic() < deadline and len(refused) + len(cut) < len(socks):
        for key, _ in selector.select(0.05):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            selector.unregister(s)
            (refused if b"too many connections" in data else cut).append(s)
    selector.close()
    gone = set(refused) | set(cut)
    return refused, cut, [s for s in socks if s not in gone]


# 1. Open `count` idle connections at once, as fast as possible.
started = time.monotonic()
held = [connect() for _ in range(count)]
opened = time.monotonic() - started
refused, cut, held = answers(held, 1.0)
report = {"opened": count, "seconds": opened, "refused": len(refused), "held": len(held)}
print(json.dumps(report), flush=True)
for s in refused + cut:
    s.close()

# 2. Keep the pressure on: reconnect whatever is refused, and trickle a byte every 4 s on what
# is held (which kept a connection and its thread alive for ever before).
end, last_trickle, total_refused, total_cut, opened = time.monotonic() + churn, 0.0, 0, 0, 0
while time.monotonic() < end:
    while len(held) < count:
        held.append(connect())
        opened += 1
    if time.monotonic() - last_trickle >= 4:
        for s in held:
            try:
                s.send(b" ")
            except OSError:
                pass
        last_trickle = time.monotonic()
    refused, cut, held = answers(held, 0.2)
    total_refused += len(refused)
    total_cut += len(cut)
    for s in refused + cut:
        s.close()
print(json.dumps({"reopened": opened, "refused": total_refused, "cut": total_cut}), flush=True)
"""


def _echo(request: dict[str, Any], peer: Peer) -> dict[str, Any]:
    return {"ok": True, "echo": request, "uid": peer.uid}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlServer]:
    server = ControlServer(tmp_path / "ctl.sock", _echo)
    server.start()
    yield server
    server.stop()


def _descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


class _Sampler:
    """The highest descriptor and thread counts of this process, sampled every 5 ms."""

    def __init__(self) -> None:
        self.descriptors = 0
        self.threads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.descriptors = max(self.descriptors, _descriptors())
            self.threads = max(self.threads, threading.active_count())


def _idle(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    return sock


def _answer(sock: socket.socket, timeout: float) -> dict[str, Any]:
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return json.loads(data) if data else {}


def test_the_command_line_is_answered_as_the_kernel_says_who_asks(server: ControlServer) -> None:
    answer = call(server.path, {"command": "status"})

    assert answer == {"ok": True, "echo": {"command": "status"}, "uid": os.getuid()}
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o660


@pytest.mark.parametrize("processes", [1, 8], ids=["one-process", "eight-processes"])
def test_1100_idle_connections_keep_descriptors_and_threads_bounded_and_the_cli_answered(
    server: ControlServer, caplog: pytest.LogCaptureFixture, processes: int
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.daemon.control")
    call(server.path, {"command": "warm-up"})  # the first handler thread exists from here
    base_descriptors, base_threads = _descriptors(), threading.active_count()
    each = 1100 // processes
    floods = [
        subprocess.Popen(
            [sys.executable, "-c", FLOOD, str(server.path), str(each), "6"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    latencies: list[float] = []
    try:
        with _Sampler() as sample:
            firsts = [json.loads(_line(flood)) for flood in floods]
            # While the flood goes on: the command line, as it connects and sends its line.
            for n in range(8):
                started = time.perf_counter()
                answer = call(server.path, {"command": "status", "n": n})
                latencies.append(time.perf_counter() - started)
                assert answer["ok"] and answer["echo"]["n"] == n, answer
                time.sleep(0.4)
            lasts = [json.loads(_line(flood)) for flood in floods]
    finally:
        for flood in floods:
            flood.kill()
            flood.wait()

    refused = sum(f["refused"] for f in firsts)
    held = sum(f["held"] for f in firsts)
    print(
        f"{processes} process(es) opened {each * processes} connections in "
        f"{max(f['seconds'] for f in firsts):.2f} s: {refused} refused at once, {held} held; "
        f"then {sum(f['reopened'] for f in lasts)} reopened, "
        f"{sum(f['refused'] for f in lasts)} refused; descriptors {base_descriptors} -> max "
        f"{sample.descriptors}, threads {base_threads} -> max {sample.threads}; command line "
        f"answered in {min(latencies) * 1000:.1f}-{max(latencies) * 1000:.1f} ms"
    )
    assert held <= min(MAX_CONNECTIONS, MAX_PER_PROCESS * processes)
    assert refused >= each * processes - MAX_CONNECTIONS - 16  # the CLI calls may cut a few
    assert all(f["refused"] > 0 for f in lasts)
    # Each flood process's stdout pipe is one here; the listing and the sampler take one or two.
    assert sample.descriptors <= base_descriptors + processes + MAX_CONNECTIONS + 4
    assert sample.threads <= base_threads + HANDLER_THREADS + 2
    assert max(latencies) < 1.0
    logged = [r for r in caplog.records if "may be flooding" in r.getMessage()]
    assert len(logged) == 1  # the summary comes a minute later
    assert server.alive


def _line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, "the flood process died"
    return line


HOLD = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
print("connected", flush=True)
sys.stdin.read()
"""


def test_a_connection_over_the_process_share_is_refused_at_once(server: ControlServer) -> None:
    idle = [_idle(server.path) for _ in range(MAX_PER_PROCESS)]
    try:
        started = time.perf_counter()
        extra = _idle(server.path)
        answer = _answer(extra, 2)
        refused_in = time.perf_counter() - started
        extra.close()
    finally:
        for sock in idle:
            sock.close()

    print(f"refused in {refused_in * 1000:.2f} ms")
    assert answer["message"].startswith("too many connections from this process")
    assert refused_in < 0.1


def test_a_connection_over_the_bound_is_refused_at_once_then_idle_ones_give_way(
    server: ControlServer,
) -> None:
    holders = [
        subprocess.Popen(
            [sys.executable, "-c", HOLD, str(server.path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(MAX_CONNECTIONS)
    ]
    try:
        for holder in holders:
            assert _line(holder) == "connected\n"
        started = time.perf_counter()
        extra = _idle(server.path)
        answer = _answer(extra, 2)
        refused_in = time.perf_counter() - started
        extra.close()
        time.sleep(EVICT_AFTER)
        late = call(server.path, {"command": "status"})
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()

    print(f"refused in {refused_in * 1000:.2f} ms")
    assert answer == {
        "ok": False,
        "message": "too many connections to the control socket (at most 16); "
        "try again in a few seconds",
    }
    assert refused_in < 0.1
    assert late["ok"] is True


def test_a_client_trickling_its_request_is_cut_at_the_deadline(server: ControlServer) -> None:
    sock = _idle(server.path)
    started = time.monotonic()
    cut_after = None
    try:
        sock.settimeout(0.25)
        sock.sendall(b'{"command": ')
        while time.monotonic() - started < REQUEST_DEADLINE + 3:
            try:
                sock.sendall(b" ")  # one byte every 0.25 s, never the end of the line
                data = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            cut_after = time.monotonic() - started
            break
    finally:
        sock.close()

    print(f"cut after {cut_after} s")
    assert cut_after is not None, "never cut"
    assert REQUEST_DEADLINE - 0.1 <= cut_after <= REQUEST_DEADLINE + 1.0
    assert b"no complete request line within 5 s" in data


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"[" * 60_000 + b"\n", "bad request: nested too deeply"),
        (b"[1, 2]\n", "bad request: a request is a JSON object"),
        (b"\xff\xfe\n", "bad request: "),
        (b"1" + b"0" * 5000 + b"\n", "bad request: "),
        (b"\n", "bad request: empty"),
        (b"x" * 70_000, "bad request: too long"),
    ],
)
def test_malformed_lines_get_a_bad_request_answer(
    server: ControlServer, line: bytes, expected: str
) -> None:
    sock = _idle(server.path)
    try:
        sock.sendall(line)
        answer = _answer(sock, 5)
    finally:
        sock.close()

    assert answer["ok"] is False
    assert answer["message"].startswith(expected)
    assert len(answer["message"]) < 300
    assert call(server.path, {"command": "status"})["ok"]


def test_a_failing_handler_costs_one_answer_not_the_server(tmp_path: Path) -> None:
    def broken(request: dict[str, Any], peer: Peer) -> dict[str, Any]:
        if request.get("command") == "crash":
            raise RuntimeError("bug")
        return {"ok": True}

    server = ControlServer(tmp_path / "ctl.sock", broken)
    server.start()
    try:
        crashed = call(server.path, {"command": "crash"})
        after = call(server.path, {"command": "status"})
    finally:
        server.stop()

    assert crashed == {"ok": False, "message": "internal error; see the daemon's log"}
    assert after == {"ok": True}
