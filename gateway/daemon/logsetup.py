"""Logging for every process of the daemon: the journal under systemd, else stderr; secrets
masked on every record; the ``CAMERA=`` and ``SITE=`` journal fields."""

from __future__ import annotations

import logging
import sys

from gateway.daemon.systemd import CameraFieldFilter, journal_handler, stderr_is_journal
from gateway.redact import RedactingFilter

__all__ = ["FIELDS", "setup_logging"]

FIELDS = CameraFieldFilter()
"""Journal fields CAMERA= and SITE=; told the site once the configuration is known."""


def setup_logging(verbose: bool, *, site: str | None = None) -> None:
    if site is not None:
        FIELDS.site = site
    handler: logging.Handler
    if stderr_is_journal():
        handler = journal_handler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.addFilter(FIELDS)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
            )
        )
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if verbose:
        import av.logging

        av.logging.set_level(av.logging.WARNING)
