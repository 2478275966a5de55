"""TLS as the gateway speaks it, to cameras and to the centre: one policy, one check, one wording.

Python's ``ssl`` does the work rather than FFmpeg's TLS, which verifies nothing by default, offers
no pinning, and cannot be given any TLS option through its RTSP client. The camera pull
(:mod:`gateway.source.rtsp`) and the uplink (:mod:`gateway.push.transport`) both call
:func:`secure`, so a certificate is judged the same way wherever it comes from.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
from dataclasses import dataclass, field

__all__ = ["TlsError", "TlsLink", "TlsPolicy", "handshake", "secure", "spki_sha256"]

_HANDSHAKE_READ = 64 * 1024


@dataclass(frozen=True, slots=True)
class TlsPolicy:
    """How the peer's certificate is checked, and what we present.

    With neither ``ca_file`` nor ``pins``, the system CAs are trusted. With pins and no
    ``ca_file``, the pinned key alone is trusted (a private, self-signed certificate), and the
    name in the certificate is not checked: the key is what identifies the peer. ``verify`` False
    checks nothing at all; the link is still encrypted, but anyone can pose as the peer.

    The value is small and picklable (the SSL context is built on first use in the process that
    connects), so it can be handed to another process.
    """

    ca_file: str | None = None
    pins: tuple[str, ...] = ()
    """Base64 SHA-256 of the peer's SubjectPublicKeyInfo; any one must match."""
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True
    _context: list[ssl.SSLContext] = field(default_factory=list, compare=False, repr=False)

    def context(self) -> ssl.SSLContext:
        if not self._context:
            if not self.verify or (self.ca_file is None and self.pins):
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            else:
                # Checks the chain and the host name; an address is matched against the
                # certificate's IP address entries only (never its common name).
                ctx = ssl.create_default_context(cafile=self.ca_file)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            if self.cert_file is not None:
                ctx.load_cert_chain(self.cert_file, self.key_file)
            self._context.append(ctx)
        return self._context[0]

    def __getstate__(self) -> tuple[object, ...]:
        # An SSL context cannot be pickled; the receiving process builds its own.
        return (self.ca_file, self.pins, self.cert_file, self.key_file, self.verify)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        names = ("ca_file", "pins", "cert_file", "key_file", "verify")
        for name, value in zip(names, state, strict=True):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_context", [])


class TlsError(Exception):
    """The TLS handshake failed or the peer is not the one we trust.

    ``reason`` is short and safe to show. ``untrusted`` marks a peer that failed the checks (its
    certificate or key), as opposed to a handshake cut short: trying again at once will not fix it.
    """

    def __init__(self, reason: str, *, untrusted: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.untrusted = untrusted


def secure(raw: socket.socket, host: str, policy: TlsPolicy, *, peer: str) -> ssl.SSLSocket:
    """Make the TLS handshake over the connected ``raw`` socket and check the peer.

    ``host`` is the name or address the user wrote: it is sent as SNI (names only) and checked
    against the certificate. ``peer`` names the other end in reasons ("camera", "server"). On
    failure ``raw`` is closed and :class:`TlsError` raised; nothing has been sent over TLS then.
    """
    try:
        tls = policy.context().wrap_socket(raw, server_hostname=host)
    except (ssl.SSLError, OSError) as exc:
        raw.close()
        raise _handshake_error(exc, peer) from None
    try:
        _check_pins(tls.getpeercert(binary_form=True), policy, peer)
    except TlsError:
        tls.close()
        raise
    return tls


@dataclass(frozen=True, slots=True)
class TlsLink:
    """A verified TLS session held in memory, and the TCP socket it runs over.

    The session (:class:`ssl.SSLObject`) reads and writes the two memory buffers; whoever holds
    the link moves ciphertext between ``sock`` and them. A relay then takes every TLS record that
    arrived with one ``recv``, where an :class:`ssl.SSLSocket` makes two system calls per record,
    and cameras send many small records (one per RTP header and payload, for some).
    """

    sock: socket.socket
    session: ssl.SSLObject
    incoming: ssl.MemoryBIO
    outgoing: ssl.MemoryBIO


def handshake(raw: socket.socket, host: str, policy: TlsPolicy, *, peer: str) -> TlsLink:
    """:func:`secure`, as a :class:`TlsLink`: the same checks and failures.

    The handshake is made with ``raw``'s own timeout on each read; ``raw`` is closed on failure.
    """
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    try:
        session = policy.context().wrap_bio(incoming, outgoing, server_hostname=host)
        while True:
            try:
                session.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw.sendall(outgoing.read())
                data = raw.recv(_HANDSHAKE_READ)
                if not data:
                    raise ConnectionAbortedError(0, f"closed by the {peer}") from None
                incoming.write(data)
        raw.sendall(outgoing.read())  # our last handshake message (Finished)
        _check_pins(session.getpeercert(binary_form=True), policy, peer)
    except TlsError:
        raw.close()
        raise
    except (ssl.SSLError, OSError) as exc:
        raw.close()
        raise _handshake_error(exc, peer) from None
    return TlsLink(raw, session, incoming, outgoing)


def _handshake_error(exc: ssl.SSLError | OSError, peer: str) -> TlsError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or "verification failed"
        return TlsError(f"TLS: {peer} certificate not trusted ({reason})", untrusted=True)
    return TlsError(f"TLS handshake failed: {_ssl_reason(exc)}")


def _check_pins(der: bytes | None, policy: TlsPolicy, peer: str) -> None:
    """Raise :class:`TlsError` unless the certificate's key is pinned (when pins are given)."""
    if not policy.verify or not policy.pins:
        return
    try:
        actual = spki_sha256(der or b"")
    except (IndexError, ValueError):
        raise TlsError(f"TLS: cannot read the {peer}'s public key", untrusted=True) from None
    if actual not in policy.pins:
        raise TlsError(
            f"TLS: {peer} key does not match the pinned key (got {actual})", untrusted=True
        )


def spki_sha256(der_certificate: bytes) -> str:
    """Base64 SHA-256 of a DER certificate's SubjectPublicKeyInfo (as ``curl --pinnedpubkey``).

    A pin on the public key, unlike one on the whole certificate, survives a renewal that keeps
    the key.
    """
    tbs = _der_children(der_certificate)[0]
    fields = _der_children(tbs)
    index = 1 if fields and fields[0][0] == 0xA0 else 0  # optional explicit [0] version
    # serial, signature algorithm, issuer, validity, subject, subjectPublicKeyInfo
    spki = fields[index + 5]
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def _der_children(element: bytes) -> list[bytes]:
    """The encoded children (tag+length+value each) of a DER constructed element."""
    _, start, end = _der_header(element, 0)
    children = []
    pos = start
    while pos < end:
        _, _, value_end = _der_header(element, pos)
        children.append(element[pos:value_end])
        pos = value_end
    return children


def _der_header(data: bytes, pos: int) -> tuple[int, int, int]:
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    return tag, pos, pos + length


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or exc.strerror or "TLS error"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__
