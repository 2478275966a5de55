"""The test camera (``rtsp_camera.py``, same options) asking for Digest authentication, not Basic.

Run with the system Python. ``--auth USER:PASS`` then registers a Digest user: FFmpeg has to
answer the camera's nonce with a hash over the request URI it sends.
"""

from __future__ import annotations

import base64

import gi

gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
import rtsp_camera  # noqa: E402
from gi.repository import GstRtsp, GstRtspServer  # noqa: E402


def _add_digest(auth: GstRtspServer.RTSPAuth, basic: str, token: GstRtspServer.RTSPToken) -> None:
    user, password = base64.b64decode(basic).decode().split(":", 1)
    auth.add_digest(user, password, token)
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)


GstRtspServer.RTSPAuth.add_basic = _add_digest

if __name__ == "__main__":
    rtsp_camera.main()
