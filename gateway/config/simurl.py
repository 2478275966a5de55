"""Settings of a ``sim://`` URL, checked without loading any media library."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

__all__ = ["SIM_DEFAULTS", "parse_sim_url"]

SIM_DEFAULTS = {"width": 640, "height": 360, "fps": 15, "gop": 2, "bitrate": 400}
_LIMITS = {
    "width": (16, 3840),
    "height": (16, 2160),
    "fps": (1, 60),
    "gop": (1, 10),
    "bitrate": (50, 20000),
}


def parse_sim_url(url: str) -> dict[str, int]:
    """``sim://NAME?width=640&height=360&fps=15&gop=2&bitrate=400`` (gop in seconds, bitrate in
    kbit/s); raise ValueError naming the bad setting."""
    settings = dict(SIM_DEFAULTS)
    for key, values in parse_qs(urlsplit(url).query, keep_blank_values=True).items():
        if key not in SIM_DEFAULTS:
            raise ValueError(f"unknown sim:// setting {key!r} (allowed: {', '.join(SIM_DEFAULTS)})")
        try:
            settings[key] = int(values[-1])
        except ValueError:
            raise ValueError(f"sim:// setting {key}={values[-1]!r} is not an integer") from None
    for key, (low, high) in _LIMITS.items():
        if not low <= settings[key] <= high:
            raise ValueError(f"sim:// setting {key}={settings[key]} is outside {low}..{high}")
    if settings["width"] % 2 or settings["height"] % 2:
        raise ValueError("sim:// width and height must be even")
    return settings
