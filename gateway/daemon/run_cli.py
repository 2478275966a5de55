"""The ``camera-gateway`` commands that run the daemon in this process or check its
configuration: ``run``, ``demo`` and ``check-config``."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config import Config, config_warnings, load_config
from gateway.daemon.logsetup import FIELDS
from gateway.units import format_duration, format_size

if TYPE_CHECKING:
    from gateway.daemon.service import Gateway

__all__ = ["check_config", "demo", "run"]

log = logging.getLogger("gateway")

EXIT_OK, EXIT_FAILURE = 0, 1


def _load(path: Path) -> Config:
    config = load_config(path)
    FIELDS.site = config.site_id
    for warning in config_warnings(config):
        log.warning("%s", warning)
    return config


def run(args: argparse.Namespace) -> int:
    """``run``: the daemon in the foreground, until a signal stops it."""
    from gateway.daemon.service import Gateway

    gateway = Gateway(_load(args.config), config_path=args.config)
    return _start_and_serve(gateway, gateway.serve)


def demo(args: argparse.Namespace) -> int:
    """``demo``: simulated cameras recorded to a folder, one forwarded to a local centre, the
    status on a local broker, with a status table (see :mod:`gateway.daemon.demo_run`)."""
    from gateway.daemon.demo_run import DemoRun
    from gateway.daemon.service import Gateway

    with DemoRun(args) as demo:
        gateway = Gateway(_load(demo.config_path), config_path=demo.config_path)
        code = _start_and_serve(gateway, lambda: demo.serve(gateway))
    demo.farewell()
    return code


def _start_and_serve(gateway: Gateway, serve: Callable[[], int]) -> int:
    """Start, then serve until stopped; signals are caught from before the start, so a stop
    asked for during a long start-up (storage recovery) is a clean one."""
    from gateway.storage.store import StorageError

    with gateway.signals():
        try:
            gateway.start()
        except StorageError as exc:
            log.error("%s", exc.reason)
            return EXIT_FAILURE
        return serve()


def check_config(args: argparse.Namespace) -> int:
    """``check-config``: validate a configuration file and say what it sets up."""
    config = load_config(args.config)
    warnings = config_warnings(config)
    storage = config.storage
    print(f"{args.config}: valid")
    print(f"  site {config.site_id}")
    print(
        f"  storage {storage.path}: quota {format_size(storage.quota)}, max_age "
        f"{format_duration(storage.max_age)}, min_free {format_size(storage.min_free)}, "
        f"segments of {format_duration(storage.segment_duration)}"
    )
    for camera in config.cameras:
        flags = "recorded" if camera.record else "not recorded"
        flags += ", with sound" if camera.audio else ", no sound"
        print(f"  camera {camera.id}: {camera.display_url} ({flags})")
    sound = [camera.id for camera in config.cameras if camera.audio]
    print(f"  sound recorded from: {', '.join(sound) if sound else 'no camera'}")
    print(f"  metrics on {config.metrics.listen}")
    for warning in warnings:
        print(f"warning: {warning}")
    return EXIT_OK
