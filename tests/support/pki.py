"""A test PKI made with the openssl command line, as an integrator would make a fleet's.

One :class:`Pki` is one certificate authority in its own directory: it issues the broker's
certificate (for ``127.0.0.1`` and ``localhost``) and client certificates whose common name
is the identity the broker sees (``use_identity_as_username``): a box's site id, an operator's
``csu-<name>``. It can revoke a certificate and publish its certificate revocation list, which
the broker reads with ``crlfile``. Keys are EC P-256 (fast to make), written mode 0600.

Free of third-party imports: tests import it (it is on mypy's path, ``tests/support``).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Identity", "Pki"]


@dataclass(frozen=True, slots=True)
class Identity:
    """A certificate and its private key, and the common name it carries."""

    name: str
    cert: Path
    key: Path


def openssl(*args: str) -> str:
    """Run openssl; its error output is in the exception when it fails."""
    result = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")
    return result.stdout


class Pki:
    """A certificate authority under ``directory`` (created), with a CRL kept up to date."""

    def __init__(self, directory: Path, name: str = "fleet") -> None:
        self.directory = directory
        self.name = name
        directory.mkdir(parents=True, exist_ok=True)
        self.ca = directory / f"{name}-ca.pem"
        self.ca_key = directory / f"{name}-ca.key"
        self.crl = directory / f"{name}-crl.pem"
        self._config = directory / "ca.cnf"
        self._clients: dict[str, Identity] = {}
        openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", f"/CN={name} test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", str(self.ca_key), "-out", str(self.ca),
        )  # fmt: skip
        os.chmod(self.ca_key, 0o600)
        (directory / "index.txt").write_text("")
        (directory / "crlnumber").write_text("01\n")
        self._config.write_text(
            "[ca]\ndefault_ca = test_ca\n[test_ca]\n"
            f"database = {directory / 'index.txt'}\n"
            f"crlnumber = {directory / 'crlnumber'}\n"
            f"certificate = {self.ca}\nprivate_key = {self.ca_key}\n"
            "default_md = sha256\ndefault_crl_days = 2\n"
        )
        self.publish_crl()

    def server(self, name: str = "broker") -> Identity:
        """The broker's certificate, valid for 127.0.0.1 and localhost."""
        return self._issue(
            name,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
            subject="127.0.0.1",
        )

    def client(self, common_name: str) -> Identity:
        """A client certificate whose common name is the broker's user name for it (made once
        per name)."""
        if common_name not in self._clients:
            extensions = "extendedKeyUsage=clientAuth\n"
            self._clients[common_name] = self._issue(common_name, extensions, subject=common_name)
        return self._clients[common_name]

    def revoke(self, identity: Identity) -> None:
        """Revoke a certificate (a stolen box) and publish the new CRL."""
        openssl("ca", "-config", str(self._config), "-revoke", str(identity.cert))
        self.publish_crl()

    def publish_crl(self) -> Path:
        openssl("ca", "-config", str(self._config), "-gencrl", "-out", str(self.crl))
        return self.crl

    def _issue(self, name: str, extensions: str, *, subject: str) -> Identity:
        key = self.directory / f"{name}.key"
        csr = self.directory / f"{name}.csr"
        cert = self.directory / f"{name}.pem"
        ext = self.directory / f"{name}.ext"
        ext.write_text(extensions)
        openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-subj", f"/CN={subject}", "-keyout", str(key), "-out", str(csr),
        )  # fmt: skip
        os.chmod(key, 0o600)
        openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey", str(self.ca_key),
            "-CAcreateserial", "-days", "2", "-sha256", "-extfile", str(ext), "-out", str(cert),
        )  # fmt: skip
        return Identity(name=subject, cert=cert, key=key)
