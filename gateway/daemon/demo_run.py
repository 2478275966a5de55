"""``camera-gateway demo`` around the daemon: its parts started before it and stopped after it,
its configuration written for the other commands, the forward session asked for through the
daemon's control socket (as ``camera-gateway forward start`` does), the status table."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from gateway.daemon.config_path import CONFIG_ENV
from gateway.daemon.demo import CENTRE_PATH, CONFIG_NAME, FORWARDED, demo_settings, write_settings
from gateway.daemon.demo_parts import DemoParts
from gateway.units import format_duration

if TYPE_CHECKING:
    from gateway.daemon.service import Gateway

__all__ = ["DemoRun"]

log = logging.getLogger("gateway.demo")

ONLINE_WAIT = 30.0
"""Seconds the forwarded camera has to come online before the demo gives up its forward."""
REQUESTED_BY = "camera-gateway demo"
REASON = "demo: a live forward to the local centre, ending by itself"


class DemoRun:
    """Entered: the parts run and ``config_path`` is written; left: every part is stopped."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.directory: Path = args.dir.resolve()
        self.config_path = self.directory / CONFIG_NAME
        self.shown_path = Path(args.dir) / CONFIG_NAME
        """As the user wrote it (relative when ``--dir`` is): what the hints show."""
        self.parts = DemoParts(Path(tempfile.mkdtemp(prefix="camera-gateway-demo-")))
        self._done = threading.Event()
        self.socket: Path | None = None

    def __enter__(self) -> DemoRun:
        try:
            self._start()
        except BaseException:
            self.parts.stop()
            raise
        return self

    def _start(self) -> None:
        args = self.args
        centre = (
            self.parts.start_centre(FORWARDED, CENTRE_PATH) if args.forward > 0 else None
        )  # fmt: skip
        broker = self.parts.start_broker()
        data = demo_settings(
            self.directory,
            cameras=args.cameras,
            metrics=args.metrics,
            centre_port=centre,
            mqtt_port=broker,
            runtime=self.parts.runtime,
        )
        self.socket = Path(data["control"]["socket"])
        write_settings(self.config_path, data)
        log.info("demo: configuration written to %s", self.config_path)

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self._done.set()
        self.parts.stop()

    # -- while the daemon runs -----------------------------------------------------------------

    def serve(self, gateway: Gateway) -> int:
        """The daemon's main loop, with the forward asked for and the table shown."""
        if self.parts.centre is not None and self.socket is not None:
            threading.Thread(
                target=self._forward, args=(self.socket,), name="demo-forward", daemon=True
            ).start()
        try:
            return gateway.serve(every=lambda: self._tick(gateway), duration=self.args.duration)
        finally:
            self._done.set()

    def _forward(self, socket: Path) -> None:
        """Once the camera is online, ask the daemon for a forward session, through its
        control socket as the command line does; it is journalled and ends by itself."""
        from gateway.daemon.control import ControlError, call

        deadline = time.monotonic() + ONLINE_WAIT
        while not self._done.wait(0.5):
            if _online(socket, FORWARDED):
                break
            if time.monotonic() > deadline:
                log.warning("demo: %s not online within %.0f s: no forward", FORWARDED, ONLINE_WAIT)
                return
        else:
            return
        request: dict[str, Any] = {
            "command": "forward",
            "action": "start",
            "camera": FORWARDED,
            "duration": self.args.forward,
            "reason": REASON,
            "requested_by": REQUESTED_BY,
        }
        try:
            answer = call(socket, request)
        except ControlError as exc:
            log.warning("demo: no forward: %s", exc)
            return
        if answer.get("ok"):
            log.info(
                "demo: %s forwarded to the local centre for %s",
                FORWARDED,
                format_duration(self.args.forward),
            )
        else:
            log.warning("demo: the forward was refused: %s", answer.get("message"))

    def _tick(self, gateway: Gateway) -> None:
        self.parts.tick()
        if self.args.no_table:
            return
        from gateway.telemetry.statusview import render_status, status_document

        snap = gateway.snapshot()
        document = status_document(
            snap.site_id, snap.cameras, snap.storage, uptime=time.monotonic() - gateway.started
        )
        footer = [
            "",
            f"recordings in {self.directory} · metrics on {self.args.metrics} · Ctrl-C stops",
            *self.parts.lines(),
            f"config: {self.shown_path} · e.g. {self.hint()}",
        ]
        clear = "\033[H\033[2J" if sys.stdout.isatty() else "\n"
        print(clear + render_status(document) + "\n".join(footer), flush=True)

    # -- after ---------------------------------------------------------------------------------

    def hint(self, command: str = "recordings list") -> str:
        return f"{CONFIG_ENV}={self.shown_path} {_program()} {command}"

    def farewell(self) -> None:
        """How to look at what the demo left."""
        print(f"\ndemo over; its recordings and configuration stay in {self.args.dir}:")
        print(f"  {self.hint()}")
        print(f"  {self.hint('audit show')}", flush=True)


def _program() -> str:
    """How the user can type this command: ``camera-gateway`` when PATH finds this one, else
    the script beside this Python (``.venv/bin/camera-gateway`` after ``make demo``)."""
    import shutil

    script = Path(sys.executable).parent / "camera-gateway"
    found = shutil.which("camera-gateway")
    if not script.exists() or (found is not None and Path(found).resolve() == script.resolve()):
        return "camera-gateway"
    try:
        return str(script.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def _online(socket: Path, camera_id: str) -> bool:
    """Whether the daemon says this camera is online (False while it does not answer yet)."""
    from gateway.daemon.control import ControlError, call

    try:
        answer = call(socket, {"command": "status"}, timeout=5.0)
    except ControlError:
        return False
    cameras = answer.get("status", {}).get("cameras", [])
    return any(c.get("id") == camera_id and c.get("state") == "online" for c in cameras)
