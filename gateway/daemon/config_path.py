"""Which configuration file a command reads when ``--config`` is left out, and how a file that
cannot be read is reported: with the file and the reason it was the one chosen.

The order is ``--config FILE``, then ``$CAMERA_GATEWAY_CONFIG``, then the installed file
``/etc/camera-gateway/config.yaml`` (what ``deploy/install.sh`` writes). So that on a box
``camera-gateway recordings list`` needs nothing more, and after ``make demo``
``CAMERA_GATEWAY_CONFIG=demo-data/config.yaml camera-gateway recordings list`` reads the demo's.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG",
    "ConfigChoice",
    "add_config_argument",
    "choose_config",
    "resolve_config",
]

CONFIG_ENV = "CAMERA_GATEWAY_CONFIG"
DEFAULT_CONFIG = Path("/etc/camera-gateway/config.yaml")

_HELP = f"configuration file (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG})"


@dataclass(frozen=True)
class ConfigChoice:
    """The file a command reads, and why that one (shown when it cannot be loaded)."""

    path: Path
    why: str

    def missing(self) -> str:
        """The one line for a file that is not there."""
        return f"no config: {self.path} ({self.why}) does not exist"


def choose_config(given: Path | None, environ: Mapping[str, str] | None = None) -> ConfigChoice:
    """``--config`` if given, else ``$CAMERA_GATEWAY_CONFIG`` if set and not empty, else the
    installed file."""
    environ = os.environ if environ is None else environ
    if given is not None:
        return ConfigChoice(given, "given with --config")
    if environ.get(CONFIG_ENV):
        return ConfigChoice(Path(environ[CONFIG_ENV]), f"from ${CONFIG_ENV}")
    return ConfigChoice(DEFAULT_CONFIG, f"the default; set --config or {CONFIG_ENV}")


def add_config_argument(parser: Any, *, needed: bool = True) -> None:
    """``--config FILE`` on a command's parser. ``needed``: the command cannot do without one
    (it gets :func:`choose_config`'s); otherwise (the commands that only look for the control
    socket) the variable or the installed file is used when there, and nothing else."""
    parser.add_argument("--config", type=Path, metavar="FILE", help=_HELP)
    parser.set_defaults(config_needed=needed)


def resolve_config(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> None:
    """Fill ``args.config`` (and ``args.config_choice``) for a parsed command line."""
    if not hasattr(args, "config_needed"):
        return
    choice = choose_config(args.config, environ)
    args.config_choice = choice
    # A command that only looks for the control socket uses the default file when it is there
    # (else the default socket), the variable always (a wrong one is said, not passed over).
    socket_only = args.config is None and getattr(args, "socket", None) is None
    if args.config_needed or (
        socket_only and (choice.path != DEFAULT_CONFIG or DEFAULT_CONFIG.exists())
    ):
        args.config = choice.path
