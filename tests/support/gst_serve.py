"""What the test camera and the test centre share: GStreamer RTSP server permissions and the
main loop that announces ``READY <port>`` and stops on SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import sys

import gi

gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, GstRtspServer  # noqa: E402


def allow(factory: GstRtspServer.RTSPMediaFactory, role: str) -> None:
    """Let clients holding ``role`` use the factory's media."""
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_permission_for_role(role, "media.factory.access", True)
    permissions.add_permission_for_role(role, "media.factory.construct", True)
    factory.set_permissions(permissions)


def serve(server: GstRtspServer.RTSPServer, port: int) -> None:
    """Listen, print ``READY <port>``, and run until SIGTERM or SIGINT."""
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on port {port}")
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    print(f"READY {port}", flush=True)
    sys.stdout.flush()
    loop.run()
