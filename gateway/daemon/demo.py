"""The embedded default: four simulated cameras recorded to a local folder with a small quota,
one of them forwarded to a local centre, the status published to a local broker.

Meant to show the whole job in one command: recording, segment rotation and eviction within a
few minutes, a forward session to the centre that ends by itself, and the status over MQTT. The
settings are written to ``<dir>/config.yaml``, a file ``run --config`` accepts and the other
commands read afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gateway.config.services import UNIX_SOCKET_PATH_MAX

__all__ = [
    "CONFIG_NAME",
    "DEMO_CAMERAS",
    "FORWARDED",
    "demo_settings",
    "write_settings",
]

DEMO_CAMERAS = ("entrance", "hall-a", "stairs-b", "parking")
FORWARDED = DEMO_CAMERAS[0]
"""The camera the demo forwards to its local centre."""
CONFIG_NAME = "config.yaml"
CENTRE_PATH = "/live/{camera_id}"


def demo_settings(
    directory: Path,
    *,
    cameras: int = 4,
    metrics: str = "127.0.0.1:9108",
    centre_port: int | None = None,
    mqtt_port: int | None = None,
    runtime: Path | None = None,
) -> dict[str, Any]:
    """Four 640x360 15 fps ``sim://`` cameras (~0.4 Mbit/s each), 10 s segments, 24 MB quota:
    the first evictions happen after about three minutes. Their pictures, small to be cheap to
    make, are smaller than the legal 704x576: the demo's ``minimum`` is lowered to their size so
    that they are not reported as non-compliant.

    ``centre_port``: an RTMP centre listening on loopback (the ``uplink``); ``mqtt_port``: a
    broker on loopback (the ``mqtt`` section). The control socket is ``<directory>/control.sock``,
    or in ``runtime`` when that path is too long for a Unix socket. Nothing in it is secret.
    """
    names = [
        DEMO_CAMERAS[i % len(DEMO_CAMERAS)] + ("" if i < 4 else f"-{i}") for i in range(cameras)
    ]
    socket = directory / "control.sock"
    if len(str(socket).encode()) > UNIX_SOCKET_PATH_MAX and runtime is not None:
        socket = runtime / "control.sock"
    data: dict[str, Any] = {
        "site_id": "demo",
        "storage": {
            "path": str(directory),
            "quota": "24MB",
            "max_age": "1h",
            "min_free": "100MB",
            "segment_duration": "10s",
        },
        "cameras": [
            {"id": name, "url": f"sim://{name}?width=640&height=360&fps=15&gop=2&bitrate=400"}
            for name in names
        ],
        "minimum": {"width": 640, "height": 360},
        "metrics": {"listen": metrics},
        "control": {"socket": str(socket)},
    }
    if centre_port is not None:
        data["uplink"] = {"url": f"rtmp://127.0.0.1:{centre_port}{CENTRE_PATH}"}
    if mqtt_port is not None:
        data["mqtt"] = {"host": "127.0.0.1", "port": mqtt_port, "status_interval": "10s"}
    return data


def write_settings(path: Path, data: dict[str, Any]) -> None:
    """Write the demo's settings as the YAML file ``run --config`` reads."""
    header = (
        "# Written by `camera-gateway demo`: the configuration it runs with. Read it with e.g.\n"
        f"#   CAMERA_GATEWAY_CONFIG={path} camera-gateway recordings list\n"
        "# The centre and the broker it names are the demo's own, gone once it ends.\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.part")
    temporary.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    temporary.replace(path)
