"""The embedded default: four simulated cameras recorded to a local folder with a small quota.

Meant to show the whole data path in one command: recording, segment rotation, and eviction
within a few minutes; a live status table is printed while it runs.
"""

from __future__ import annotations

from pathlib import Path

from gateway.config import Config, parse_config

__all__ = ["DEMO_CAMERAS", "demo_config"]

DEMO_CAMERAS = ("entrance", "hall-a", "stairs-b", "parking")


def demo_config(directory: Path, *, cameras: int = 4, metrics: str = "127.0.0.1:9108") -> Config:
    """Four 640x360 15 fps ``sim://`` cameras (~0.4 Mbit/s each), 10 s segments, 24 MB quota:
    the first evictions happen after about three minutes. Their pictures, small to be cheap to
    make, are smaller than the legal 704x576: the demo's ``minimum`` is lowered to their size so
    that they are not reported as non-compliant."""
    names = [
        DEMO_CAMERAS[i % len(DEMO_CAMERAS)] + ("" if i < 4 else f"-{i}") for i in range(cameras)
    ]
    data = {
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
    }
    return parse_config(data, base_dir=directory)
