"""A loopback bridge from FFmpeg's plain RTSP connection to a camera's verified TLS connection.

FFmpeg's RTSP client cannot be told to verify a certificate, so for ``rtsps://`` the source makes
the TLS connection itself (:func:`gateway.source.tls.handshake`) and FFmpeg speaks plain RTSP to
this relay on ``127.0.0.1``. Bytes are passed on unchanged both ways: FFmpeg's Digest answers hash
the request URI it sends, so rewriting the relay's address into the camera's would break them.

Cheap by construction: one thread, both sockets non-blocking on one selector, and the TLS session
kept in memory, so that one ``recv`` takes every TLS record that arrived (a camera may send two
small records per RTP packet). Buffers are bounded both ways: when FFmpeg does not read, the relay
stops reading the camera and TCP pushes back on the camera, instead of memory growing. Exactly one
connection is accepted, then the listener is closed, so nothing else can reach the camera through
it. An error on either side, either side closing (once what it sent has been passed on), or
:meth:`TlsRelay.close` ends the thread and closes both sockets.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import threading
import time

from gateway.host.threads import name_native_thread
from gateway.source.tls import TlsLink

__all__ = ["DOWN_BUFFER", "UP_BUFFER", "TlsRelay"]

DOWN_BUFFER = 256 * 1024
"""Camera bytes held for FFmpeg, decrypted and not: half a second of a 4 Mbit/s camera."""
UP_BUFFER = 64 * 1024
"""FFmpeg bytes held for the camera: RTSP requests and RTCP reports, a few KiB at most."""
DRAIN_TIMEOUT = 1.0
"""Seconds allowed to pass on what one side sent before it closed."""
CLOSE_GRACE = 0.1
"""Seconds :meth:`TlsRelay.close` lets the relay end by itself (FFmpeg closed, TEARDOWN sent)."""
_RECORD = 16 * 1024
"""The largest TLS record's plaintext: what one session read can give."""
_RECEIVE = 64 * 1024
"""Most ciphertext taken in one ``recv``: at 4 Mbit/s a wake-up finds some 15 KiB."""


class TlsRelay:
    """Listens on ``127.0.0.1:<port>`` for FFmpeg and bridges it to ``link`` (already verified).

    The relay owns ``link`` from construction on. ``failure`` is a reason safe to show when the
    relay ended on an error of the camera's side rather than on a close.
    """

    def __init__(self, link: TlsLink, *, name: str, accept_timeout: float) -> None:
        self._link = link
        self._accept_timeout = accept_timeout
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=1)
        self.port: int = self._listener.getsockname()[1]
        self._wake_recv, self._wake_send = socket.socketpair()
        self.failure: str | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        try:
            self._thread.start()
        except RuntimeError:  # no thread to be had: nothing of the relay may stay open
            for sock in (self._listener, self._wake_recv, self._wake_send):
                sock.close()
            raise

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float = 1.0) -> None:
        """End the relay (closing both sides) and wait up to ``timeout`` for its thread.

        FFmpeg closing its side ends the relay by itself once its last bytes (a TEARDOWN) are
        passed on; that is given a moment before the relay is told to stop.
        """
        self._thread.join(min(CLOSE_GRACE, timeout))
        with contextlib.suppress(OSError):
            self._wake_send.send(b"x", socket.MSG_DONTWAIT)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._wake_send.close()

    def _run(self) -> None:
        name_native_thread()
        plain: socket.socket | None = None
        selector = selectors.DefaultSelector()
        try:
            plain = self._accept(selector)
            if plain is not None:
                _Bridge(selector, self._link, plain, self._wake_recv).run()
        except ssl.SSLError as exc:
            detail = (exc.reason or exc.strerror or "error").replace("_", " ").lower()
            self.failure = f"TLS: {detail} on the camera link"  # e.g. "bad record mac"
        except OSError as exc:
            self.failure = f"camera link lost: {exc.strerror or type(exc).__name__}"
        finally:
            selector.close()
            for sock in (self._listener, self._link.sock, plain, self._wake_recv):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()

    def _accept(self, selector: selectors.BaseSelector) -> socket.socket | None:
        """The one connection (FFmpeg's); None if closed or nobody connected in time."""
        selector.register(self._listener, selectors.EVENT_READ)
        selector.register(self._wake_recv, selectors.EVENT_READ)
        try:
            ready = selector.select(self._accept_timeout)
            if not any(key.fileobj is self._listener for key, _ in ready):
                return None
            plain, _ = self._listener.accept()
        finally:
            selector.unregister(self._listener)
            self._listener.close()
        plain.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return plain


class _PlainSideError(Exception):
    """FFmpeg's side broke: the source is going away, nothing to report."""


class _Bridge:
    """The byte moving of one relay, on its thread; returns when either side is done.

    Errors on the camera's side (``ssl.SSLError``, ``OSError``) propagate, to be reported;
    FFmpeg's side closing or breaking just ends the bridge.
    """

    def __init__(
        self,
        selector: selectors.BaseSelector,
        link: TlsLink,
        plain: socket.socket,
        wake: socket.socket,
    ) -> None:
        self._selector = selector
        self._sock, self._session = link.sock, link.session
        self._incoming, self._outgoing = link.incoming, link.outgoing
        self._plain, self._wake = plain, wake
        self._down = bytearray()  # camera -> FFmpeg, decrypted
        self._wire = bytearray()  # FFmpeg -> camera, encrypted
        self._camera_eof = self._plain_eof = False
        self._interest = {self._sock.fileno(): 0, plain.fileno(): 0}
        self._sock.setblocking(False)
        plain.setblocking(False)

    def run(self) -> None:
        try:
            self._loop()
        except _PlainSideError:
            return

    def _loop(self) -> None:
        self._decrypt()  # records that came with the end of the handshake
        deadline: float | None = None
        while True:
            if (self._camera_eof and not self._down) or (self._plain_eof and not self._wire):
                return  # one side closed and what it sent has been passed on
            if deadline is None and (self._camera_eof or self._plain_eof):
                deadline = time.monotonic() + DRAIN_TIMEOUT
            timeout = None if deadline is None else deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                return  # the open side does not take what the closed side sent
            self._watch(self._sock, self._camera_events())
            self._watch(self._plain, self._plain_events())
            ready = {key.fileobj: mask for key, mask in self._selector.select(timeout)}
            if self._wake in ready:
                return
            if ready.get(self._sock, 0) & selectors.EVENT_READ:
                self._receive()
            if ready.get(self._plain, 0) & selectors.EVENT_READ:
                self._read_plain()
            # Write at once after reading: most writes then go out without another wake-up.
            self._write_plain()
            self._send()

    def _held(self) -> int:
        """Camera bytes held: decrypted for FFmpeg, and received but not decrypted yet."""
        return len(self._down) + self._incoming.pending

    def _camera_events(self) -> int:
        events = selectors.EVENT_WRITE if self._wire else 0
        if not self._camera_eof and self._held() < DOWN_BUFFER:
            events |= selectors.EVENT_READ
        return events

    def _plain_events(self) -> int:
        events = selectors.EVENT_WRITE if self._down else 0
        if not self._plain_eof and len(self._wire) < UP_BUFFER:
            events |= selectors.EVENT_READ
        return events

    def _watch(self, sock: socket.socket, events: int) -> None:
        fd = sock.fileno()
        before = self._interest[fd]
        if events == before:
            return
        if before == 0:
            self._selector.register(sock, events)
        elif events == 0:
            self._selector.unregister(sock)
        else:
            self._selector.modify(sock, events)
        self._interest[fd] = events

    def _receive(self) -> None:
        """Take what the camera sent (ciphertext) and decrypt what the buffer has room for."""
        room = min(DOWN_BUFFER - self._held(), _RECEIVE)
        if room <= 0 or self._camera_eof:
            return
        try:
            data = self._sock.recv(room)
        except (BlockingIOError, InterruptedError):
            return
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()
        self._decrypt()

    def _decrypt(self) -> None:
        read, down = self._session.read, self._down
        while len(down) < DOWN_BUFFER:
            try:
                data = read(_RECORD)
            except ssl.SSLWantReadError:
                break  # the rest of a record is still on its way
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                data = b""  # closed, with or without a TLS close_notify
            if not data:
                self._camera_eof = True
                break
            down += data
        if self._outgoing.pending:  # a TLS 1.3 key update asks for an answer
            self._wire += self._outgoing.read()

    def _read_plain(self) -> None:
        if self._plain_eof or len(self._wire) >= UP_BUFFER:
            return
        try:
            data = self._plain.recv(UP_BUFFER - len(self._wire))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            raise _PlainSideError from None
        if not data:
            self._plain_eof = True
        elif not self._camera_eof:
            self._session.write(data)
            self._wire += self._outgoing.read()

    def _write_plain(self) -> None:
        if not self._down:
            return
        try:
            sent = self._plain.send(self._down)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            raise _PlainSideError from None
        del self._down[:sent]
        if self._incoming.pending and not self._camera_eof:
            self._decrypt()  # room again for what was held back

    def _send(self) -> None:
        if not self._wire or self._camera_eof:
            return
        try:
            sent = self._sock.send(self._wire)
        except (BlockingIOError, InterruptedError):
            return
        del self._wire[:sent]
