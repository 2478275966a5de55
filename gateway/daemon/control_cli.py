"""The ``camera-gateway`` commands that talk to the running daemon over its control socket:
``status``, ``forward start|stop|status``, ``snapshot`` and ``analysis relearn``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gateway.config import load_config

__all__ = ["forward_command", "forward_status", "relearn", "snapshot", "status"]

EXIT_OK, EXIT_FAILURE = 0, 1


def _control_socket(args: argparse.Namespace) -> Path:
    from gateway.config.services import DEFAULT_CONTROL_SOCKET

    if args.socket is not None:
        return Path(args.socket)
    if args.config is not None:
        return load_config(args.config).control.socket
    return Path(DEFAULT_CONTROL_SOCKET)


def forward_command(args: argparse.Namespace) -> int:
    """``forward start|stop``: ask the daemon to start (or extend) or stop a forward session."""
    from gateway.text import display

    request: dict[str, object] = {
        "command": "forward",
        "action": args.action,
        "camera": args.camera,
    }
    if args.action == "start":
        request["duration"] = args.duration
    if args.reason is not None:
        request["reason"] = args.reason
    answer = _ask(args, request)
    if answer is None:
        return EXIT_FAILURE
    session = answer.get("session")
    session = session if isinstance(session, dict) else {}
    print(
        f"{display(answer.get('message'))}: camera {display(args.camera)}, "
        f"session {display(session.get('session'))}"
    )
    for key in ("target", "ends", "duration", "bytes_sent"):
        if session.get(key) is not None:
            print(f"  {key}: {display(session[key])}")
    return EXIT_OK


def snapshot(args: argparse.Namespace) -> int:
    """``snapshot``: the camera's last keyframe, privacy zones blacked out, written to a file
    only its owner may read (it shows people)."""
    import base64
    import binascii
    import hashlib

    from gateway.text import display

    answer = _ask_about_camera("snapshot", args)
    if answer is None:
        return EXIT_FAILURE
    try:
        jpeg = base64.b64decode(answer["jpeg"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        print("camera-gateway: no usable answer from the daemon (no picture)", file=sys.stderr)
        return EXIT_FAILURE
    if hashlib.sha256(jpeg).hexdigest() != answer.get("sha256"):
        print("camera-gateway: the picture received does not match its hash", file=sys.stderr)
        return EXIT_FAILURE
    try:
        _write_private(Path(args.output), jpeg)
    except OSError as exc:
        print(f"camera-gateway: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"snapshot of camera {display(args.camera)} written to {display(args.output)}")
    print(f"  bytes: {len(jpeg)}")
    print(f"  size: {display(answer.get('width'))}x{display(answer.get('height'))}")
    print(f"  keyframe_at: {display(answer.get('keyframe_at'))}")
    print(f"  sha256: {display(answer.get('sha256'))}")
    return EXIT_OK


def _write_private(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (a new file renamed over it), mode 0600."""
    import os
    import secrets

    from gateway.host.durable import fsync_dir, write_new

    folder = path.parent
    temporary = folder / f".{path.name}.{secrets.token_hex(4)}.part"
    try:
        write_new(temporary, data, 0o600)
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(folder)


def relearn(args: argparse.Namespace) -> int:
    """``analysis relearn``: after an intentional re-aim, the camera's watch learns the view
    again (journalled, with who asked and why)."""
    from gateway.text import display

    answer = _ask_about_camera("relearn", args)
    if answer is None:
        return EXIT_FAILURE
    print(display(answer.get("message")))
    return EXIT_OK


def _ask_about_camera(command: str, args: argparse.Namespace) -> dict[str, Any] | None:
    """A camera's integrity command (who asks, why): the daemon's answer, or None."""
    return _ask(args, {"command": command, "camera": args.camera, "reason": args.reason})


def _ask(args: argparse.Namespace, request: dict[str, object]) -> dict[str, Any] | None:
    """Send a command, with who asks if given, to the daemon; its answer, or None once the
    reason it failed is printed."""
    from gateway.daemon.control import ControlError, call
    from gateway.text import display

    if args.requested_by is not None:
        request["requested_by"] = args.requested_by
    try:
        answer = call(_control_socket(args), request)
    except ControlError as exc:
        print(f"camera-gateway: {exc}", file=sys.stderr)
        return None
    if not answer.get("ok"):
        print(f"camera-gateway: refused: {display(answer.get('message'))}", file=sys.stderr)
        return None
    return answer


def forward_status(args: argparse.Namespace) -> int:
    """``forward status``: the forward of every camera, as the daemon reports it."""
    from gateway.text import display

    document = _running_status(args)
    if document is None:
        return EXIT_FAILURE
    cameras = document.get("cameras", [])
    forwards = {c["id"]: c["forward"] for c in cameras}
    if args.json:
        print(json.dumps(forwards, indent=2))  # ASCII only: every other character is escaped
        return EXIT_OK
    for camera_id, forward in forwards.items():
        line = (
            f"{display(camera_id):<14}{display(forward['mode']):<12}{display(forward['state']):<12}"
        )
        if forward.get("ends"):
            line += f" until {display(forward['ends'])}"
        if forward.get("requested_by"):
            line += f" (asked by {display(forward['requested_by'])})"
        if forward.get("error"):
            line += f" ! {display(forward['error'])}"
        print(line)
    return EXIT_OK


def status(args: argparse.Namespace) -> int:
    """``status``: cameras and storage of the running daemon, as a table or JSON."""
    from gateway.telemetry.statusview import render_status

    document = _running_status(args)
    if document is None:
        return EXIT_FAILURE
    # JSON is ASCII only (every other character escaped); the table escapes what it shows.
    print(json.dumps(document, indent=2) if args.json else render_status(document))
    return EXIT_OK


def _running_status(args: argparse.Namespace) -> dict[str, Any] | None:
    """The running daemon's status document; None, said on stderr, when there is none."""
    from gateway.daemon.control import ControlError, call
    from gateway.text import display

    try:
        answer = call(_control_socket(args), {"command": "status"})
    except ControlError as exc:
        print(f"camera-gateway: {exc}", file=sys.stderr)
        return None
    document = answer.get("status")
    if not answer.get("ok") or not isinstance(document, dict):
        print(f"camera-gateway: {display(answer.get('message', 'no status'))}", file=sys.stderr)
        return None
    return document
