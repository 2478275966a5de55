"""RTSP authentication for a push: Basic, and Digest with MD5 (RFC 2617, qop=auth or none)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Callable

from gateway.push.error import PushError

__all__ = ["Credentials"]

_AUTH_FIELD = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]+))')


class Credentials:
    """The Authorization header of a session's requests, made from the server's challenge;
    ``random`` gives the client nonce."""

    def __init__(
        self,
        scheme: str,
        user: str,
        password: str,
        params: dict[str, str],
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.scheme = scheme
        self.user = user
        self.password = password
        self.params = params
        self.count = 0
        self._random = random

    @classmethod
    def from_challenges(
        cls,
        challenges: list[str],
        user: str,
        password: str,
        random: Callable[[int], bytes] = os.urandom,
    ) -> Credentials:
        """Digest if the server offers it, else Basic; :class:`PushError` (an authentication
        error) for a scheme or an algorithm this client does not speak."""
        schemes = [c.split(" ", 1)[0].lower() for c in challenges]
        if "digest" in schemes:
            challenge = challenges[schemes.index("digest")]
            params = {m[1].lower(): m[2] or m[3] for m in _AUTH_FIELD.finditer(challenge)}
            algorithm = params.get("algorithm", "MD5")
            if algorithm.upper() != "MD5":
                raise PushError(f"the centre asks for Digest with {algorithm[:20]!r}", auth=True)
            return cls("digest", user, password, params, random)
        if not challenges or "basic" in schemes:
            return cls("basic", user, password, {}, random)
        raise PushError(f"the centre asks for {schemes[0][:20]!r} authentication", auth=True)

    def header(self, method: str, uri: str) -> str:
        if self.scheme == "basic":
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            return f"Basic {token}"
        realm, nonce = self.params.get("realm", ""), self.params.get("nonce", "")
        ha1 = _md5(f"{self.user}:{realm}:{self.password}")
        ha2 = _md5(f"{method}:{uri}")
        fields = [f'username="{self.user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
        qop = self.params.get("qop", "")
        if "auth" in qop.split(","):
            self.count += 1
            nc = f"{self.count:08x}"
            cnonce = self._random(8).hex()
            response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            fields += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
        else:
            response = _md5(f"{ha1}:{nonce}:{ha2}")
        fields.append(f'response="{response}"')
        if "opaque" in self.params:
            fields.append(f'opaque="{self.params["opaque"]}"')
        return "Digest " + ", ".join(fields)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
