"""The TLS checks shared by cameras and the uplink, and the loopback relay FFmpeg reads through.

The peer is a real TLS server (Python's ssl, certificates from openssl) on a thread, so each
behaviour is seen on real sockets: bytes both ways, back-pressure, the ends of a connection.
"""

from __future__ import annotations

import contextlib
import hashlib
import pickle
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import make_certificates, spki_pin, wait_until

from gateway.push.transport import PushError, open_uplink
from gateway.source.tls import TlsError, TlsLink, TlsPolicy, handshake
from gateway.source.tlsrelay import DOWN_BUFFER, TlsRelay

Handler = Callable[[ssl.SSLSocket], None]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_certificates(tmp_path_factory.mktemp("pki"), name="camera")


class TlsPeer:
    """A TLS server for one connection at a time, running ``handler`` on each."""

    def __init__(self, certs: dict[str, Path], handler: Handler) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(certs["cert"], certs["key"])
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._handler = handler
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            try:
                with self._context.wrap_socket(raw, server_side=True) as tls:
                    self._handler(tls)
            except (OSError, ssl.SSLError) as exc:
                self.errors.append(exc)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread's accept()
        self._listener.close()
        self._thread.join(5)


StartPeer = Callable[[Handler], TlsPeer]
"""The ``peer(handler)`` fixture: a started :class:`TlsPeer`, closed at teardown."""


@pytest.fixture
def peer(certs: dict[str, Path]) -> Iterator[StartPeer]:
    started: list[TlsPeer] = []

    def start(handler: Handler) -> TlsPeer:
        server = TlsPeer(certs, handler)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def link_to(port: int, policy: TlsPolicy, *, rcvbuf: int | None = None) -> TlsLink:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    if rcvbuf is not None:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    return handshake(raw, "127.0.0.1", policy, peer="camera")


def echo(tls: ssl.SSLSocket) -> None:
    while data := tls.recv(65536):
        tls.sendall(data)


def relay_for(link: TlsLink) -> TlsRelay:
    return TlsRelay(link, name="test/tls", accept_timeout=5)


def pattern(size: int) -> bytes:
    """Bytes that show any loss, duplication or reordering."""
    block = hashlib.sha256(b"relay").digest() * 2048
    return (block * (size // len(block) + 1))[:size]


def test_bytes_cross_unchanged_both_ways_and_close_ends_the_thread(
    certs: dict[str, Path], peer: StartPeer
) -> None:
    server = peer(echo)
    relay = relay_for(link_to(server.port, TlsPolicy(ca_file=str(certs["ca"]))))
    data = pattern(3 * DOWN_BUFFER)
    with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as plain:
        sender = threading.Thread(target=plain.sendall, args=(data,))
        sender.start()
        received = bytearray()
        while len(received) < len(data):
            received += plain.recv(65536)
        sender.join(5)
        assert bytes(received) == data
        relay.close()
        assert not relay.alive
        assert plain.recv(1) == b"", "the relay closed FFmpeg's side"
    assert relay.failure is None


def test_one_connection_is_accepted_then_the_listener_is_closed(
    certs: dict[str, Path], peer: StartPeer
) -> None:
    server = peer(echo)
    relay = relay_for(link_to(server.port, TlsPolicy(ca_file=str(certs["ca"]))))
    try:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as first:
            first.sendall(b"OPTIONS * RTSP/1.0\r\n\r\n")
            assert first.recv(100) == b"OPTIONS * RTSP/1.0\r\n\r\n"
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", relay.port), timeout=5)
    finally:
        relay.close()


def test_a_reader_that_stops_holds_the_camera_back_within_bounded_memory(
    certs: dict[str, Path], peer: StartPeer
) -> None:
    total = 16 * 1024 * 1024
    progress = {"sent": 0}

    def stream(tls: ssl.SSLSocket) -> None:
        tls.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        data = memoryview(pattern(total))
        for start in range(0, total, 16384):
            tls.sendall(data[start : start + 16384])
            progress["sent"] = start + 16384

    server = peer(stream)
    relay = relay_for(link_to(server.port, TlsPolicy(ca_file=str(certs["ca"])), rcvbuf=64 * 1024))
    try:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as plain:
            plain.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            time.sleep(1.0)  # FFmpeg busy: nothing is read
            held = progress["sent"]
            time.sleep(0.5)
            assert progress["sent"] == held, "the camera is held back, not buffered without end"
            assert held < total / 2, f"{held} bytes taken from the camera"
            received = bytearray()
            while len(received) < total:
                chunk = plain.recv(1 << 20)
                assert chunk, f"stream cut after {len(received)} bytes"
                received += chunk
            assert bytes(received) == pattern(total)
    finally:
        relay.close()


def test_what_the_camera_sent_before_closing_is_passed_on(
    certs: dict[str, Path], peer: StartPeer
) -> None:
    def say_and_leave(tls: ssl.SSLSocket) -> None:
        tls.sendall(b"RTSP/1.0 454 Session Not Found\r\n\r\n")

    server = peer(say_and_leave)
    relay = relay_for(link_to(server.port, TlsPolicy(ca_file=str(certs["ca"]))))
    with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as plain:
        received = b""
        while chunk := plain.recv(1024):
            received += chunk
    assert received == b"RTSP/1.0 454 Session Not Found\r\n\r\n"
    wait_until(lambda: not relay.alive, 2, "the relay to end")
    relay.close()


def test_a_broken_camera_link_ends_the_relay_with_a_reason(
    certs: dict[str, Path], peer: StartPeer
) -> None:
    def garble(tls: ssl.SSLSocket) -> None:
        raw = socket.socket(fileno=tls.detach())
        raw.sendall(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)  # an application record that fails
        time.sleep(0.5)
        raw.close()

    server = peer(garble)
    relay = relay_for(link_to(server.port, TlsPolicy(ca_file=str(certs["ca"]))))
    with (
        socket.create_connection(("127.0.0.1", relay.port), timeout=5) as plain,
        contextlib.suppress(ConnectionResetError),  # closed or reset: FFmpeg sees the end
    ):
        while plain.recv(1024):
            pass
    wait_until(lambda: not relay.alive, 2, "the relay to end")
    assert relay.failure is not None and relay.failure.startswith("TLS: "), relay.failure
    relay.close()


def test_nobody_connecting_ends_the_relay(certs: dict[str, Path], peer: StartPeer) -> None:
    server = peer(echo)
    link = link_to(server.port, TlsPolicy(ca_file=str(certs["ca"])))
    relay = TlsRelay(link, name="test/tls", accept_timeout=0.3)
    wait_until(lambda: not relay.alive, 3, "the relay to give up")
    relay.close()
    assert link.sock.fileno() == -1, "the camera's socket is closed"


@pytest.mark.parametrize(
    ("policy", "reason"),
    [
        (
            TlsPolicy(),
            "TLS: camera certificate not trusted (unable to get local issuer certificate)",
        ),
        (TlsPolicy(pins=("A" * 43 + "=",)), "TLS: camera key does not match the pinned key (got "),
    ],
)
def test_checks_refuse_before_anything_is_sent(
    certs: dict[str, Path], peer: StartPeer, policy: TlsPolicy, reason: str
) -> None:
    received: list[bytes] = []
    server = peer(lambda tls: received.append(tls.recv(100)))
    with pytest.raises(TlsError) as caught:
        link_to(server.port, policy)
    assert caught.value.reason.startswith(reason)
    assert caught.value.untrusted
    wait_until(lambda: received or server.errors, 2, "the server to see the end")
    assert received in ([], [b""]), "nothing was sent over TLS"


def test_the_uplink_and_the_cameras_judge_a_certificate_alike(
    certs: dict[str, Path], peer: StartPeer
) -> None:
    server = peer(echo)
    pins = (spki_pin(certs["cert"]),)
    for policy in (TlsPolicy(ca_file=str(certs["ca"])), TlsPolicy(pins=pins)):
        link_to(server.port, policy).sock.close()
        open_uplink("127.0.0.1", server.port, tls=policy, timeout=5).close()
    with pytest.raises(PushError, match=r"^TLS: server certificate not trusted \("):
        open_uplink("127.0.0.1", server.port, tls=TlsPolicy(), timeout=5)
    with pytest.raises(TlsError, match=r"^TLS: camera certificate not trusted \("):
        link_to(server.port, TlsPolicy())


def test_a_policy_crosses_to_another_process_without_its_context(certs: dict[str, Path]) -> None:
    policy = TlsPolicy(ca_file=str(certs["ca"]), pins=("x",))
    policy.context()
    copy = pickle.loads(pickle.dumps(policy))  # noqa: S301 - our own bytes, made just now
    assert copy == policy
    assert copy.context() is not policy.context()
