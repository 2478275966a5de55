"""The box's signing key: Ed25519, created at first start, rotated with a signed hand-over.

The private key is ``<keys>/signing.pem`` (PKCS #8 PEM, mode 0600); it never leaves this module
and is never logged. Every public key the box ever used is kept as ``<keys>/<fingerprint>.pub.pem``
and in ``<keys>/keys.jsonl``, one line per key: the first is ``created``; each later one is
``rotated`` and carries the previous key's signature over the new public key, so a verifier holding
any one key the box published can follow the chain to the current one.

A fingerprint is the SHA-256 of the public key's DER SubjectPublicKeyInfo, in hex: anyone can
compute it with ``openssl pkey -pubin -in signer.pub.pem -outform der | sha256sum``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.clock import utc_iso
from gateway.host.durable import fsync_dir, write_all, write_new

__all__ = [
    "HISTORY_NAME",
    "KEY_NAME",
    "KeyRing",
    "PublicKey",
    "Signer",
    "SigningKeyError",
    "fingerprint",
    "load_public",
]

KEY_NAME = "signing.pem"
HISTORY_NAME = "keys.jsonl"


class SigningKeyError(Exception):
    """The signing key is missing, unreadable or invalid; ``reason`` says which and where."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def fingerprint(public: Ed25519PublicKey) -> str:
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A public key as a verifier holds it."""

    key: Ed25519PublicKey
    fingerprint: str
    pem: str

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self.key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


def load_public(pem: bytes | str) -> PublicKey:
    """A PEM public key; ValueError when it is not an Ed25519 one."""
    raw = pem.encode("ascii") if isinstance(pem, str) else pem
    key = serialization.load_pem_public_key(raw)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return PublicKey(key, fingerprint(key), public_pem(key))


class Signer:
    """Signs with the current private key."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = PublicKey(
            private.public_key(),
            fingerprint(private.public_key()),
            public_pem(private.public_key()),
        )

    @property
    def fingerprint(self) -> str:
        return self.public.fingerprint

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    def sign_b64(self, data: bytes) -> str:
        return base64.b64encode(self._private.sign(data)).decode("ascii")

    def __repr__(self) -> str:  # never the key itself
        return f"Signer({self.fingerprint[:16]})"


class KeyRing:
    """The key folder of one box. Thread-safe; the daemon and the command line may share it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._signer: Signer | None = None
        self._loaded_id: tuple[int, int, int] | None = None

    @property
    def key_file(self) -> Path:
        return self.path / KEY_NAME

    @property
    def history_file(self) -> Path:
        return self.path / HISTORY_NAME

    def ensure(self) -> tuple[Signer, bool]:
        """The signer, creating the key if the folder has none; (signer, created)."""
        with self._lock:
            if not self.key_file.exists() and not self.key_file.is_symlink():
                signer = self._create_locked()
                return signer, True
        return self.signer(), False

    def signer(self) -> Signer:
        """The current key (re-read when the file changed, e.g. rotated by the command line)."""
        with self._lock:
            try:
                st = os.stat(self.key_file)
            except FileNotFoundError:
                raise SigningKeyError(f"signing key {self.key_file} is missing") from None
            except OSError as exc:
                raise SigningKeyError(f"signing key {self.key_file}: {exc.strerror}") from None
            ident = (st.st_dev, st.st_ino, st.st_mtime_ns)
            if self._signer is not None and ident == self._loaded_id:
                return self._signer
            self._signer = Signer(self._read_private())
            self._loaded_id = ident
            return self._signer

    def _read_private(self) -> Ed25519PrivateKey:
        try:
            fd = os.open(self.key_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as stream:
                data = stream.read(64 * 1024)
        except OSError as exc:
            raise SigningKeyError(f"signing key {self.key_file}: {exc.strerror}") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise SigningKeyError(
                f"signing key {self.key_file} is not a readable PEM key"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError(f"signing key {self.key_file} is not an Ed25519 key")
        return key

    def _create_locked(self) -> Signer:
        private = Ed25519PrivateKey.generate()
        signer = Signer(private)
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o750)
            self._write_public(signer.public)
            self._append_history(
                {
                    "event": "created",
                    "fingerprint": signer.fingerprint,
                    "public_key": signer.public.pem,
                }
            )
            self._write_private(private)
        except OSError as exc:
            raise SigningKeyError(
                f"cannot create signing key in {self.path}: {exc.strerror}"
            ) from None
        self._signer = None
        return signer

    def rotate(self) -> tuple[Signer, Signer]:
        """Make a new key; the old one signs the hand-over. Returns (old, new)."""
        old = self.signer()
        with self._lock:
            private = Ed25519PrivateKey.generate()
            new = Signer(private)
            handover = _handover_message(old.fingerprint, new.fingerprint)
            try:
                self._write_public(new.public)
                self._append_history(
                    {
                        "event": "rotated",
                        "fingerprint": new.fingerprint,
                        "public_key": new.public.pem,
                        "previous": old.fingerprint,
                        "handover": handover.decode("ascii"),
                        "handover_sig": old.sign_b64(handover),
                    }
                )
                self._write_private(private)
            except OSError as exc:
                raise SigningKeyError(
                    f"cannot rotate signing key in {self.path}: {exc.strerror}"
                ) from None
            self._signer = None
        return old, new

    def history(self) -> list[dict[str, Any]]:
        """The key history, oldest first."""
        try:
            text = self.history_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise SigningKeyError(f"key history {self.history_file}: {exc.strerror}") from None
        out = []
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict):
                    out.append(value)
        return out

    def public_keys(self) -> dict[str, PublicKey]:
        """Every public key of the history whose hand-over checks out, by fingerprint."""
        keys: dict[str, PublicKey] = {}
        for entry in self.history():
            try:
                key = load_public(str(entry.get("public_key", "")))
            except ValueError:
                continue
            if key.fingerprint != entry.get("fingerprint"):
                continue
            if entry.get("event") == "rotated":
                previous = keys.get(str(entry.get("previous")))
                handover = _handover_message(str(entry.get("previous")), key.fingerprint)
                try:
                    signature = base64.b64decode(str(entry.get("handover_sig", "")), validate=True)
                except ValueError:
                    continue
                if previous is None or not previous.verify(signature, handover):
                    continue
            elif keys:
                continue  # a second "created": not part of the chain
            keys[key.fingerprint] = key
        return keys

    # -- files -------------------------------------------------------------------------------

    def _write_public(self, public: PublicKey) -> None:
        write_new(self.path / f"{public.fingerprint}.pub.pem", public.pem.encode("ascii"), 0o640)

    def _append_history(self, entry: dict[str, Any]) -> None:
        line = json.dumps({"time": utc_iso(time.time()), **entry}, sort_keys=True) + "\n"
        fd = os.open(
            self.history_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o640
        )
        try:
            write_all(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write_private(self, private: Ed25519PrivateKey) -> None:
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = self.path / f".{KEY_NAME}.new"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        write_new(tmp, pem, 0o600)
        os.replace(tmp, self.key_file)
        fsync_dir(self.path)


def _handover_message(previous: str, new: str) -> bytes:
    return f"camera-gateway key rotation: {previous} -> {new}".encode("ascii")
