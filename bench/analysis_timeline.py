"""Camera integrity over time: a 30-minute clean run per scene, and measured detection delays,
through the state machine, on real H.264 keyframes.

The product requirement: no false alarm over a 30-minute clean run with lighting and infrared
changes, and a detection delay of at most ``min_duration`` + 2 ``interval`` (14 s by default).
``bench/analysis_quality.py`` judges single keyframes; this runs the whole
``CameraMonitor`` (learning, debounce, hysteresis, reference refresh, baseline following) on
keyframes in sequence, each one rendered from a scene of ``tests/analysis_scenes.py``, encoded as
one H.264 keyframe with libx264 (``encode_keyframe`` of ``tests/analysis_set.py``) and decoded
through ``gateway.analysis.KeyframeDecoder``. ``at`` is the simulated time, so 30 minutes of a
camera take well under a minute.

Clean run: one ``CameraMonitor`` per scene, one keyframe every ``interval`` for ``--minutes``
(900 keyframes for 30 minutes), over a timeline (:class:`Timeline`, times given for 30 minutes
and scaled to the run's length) with:

- slow lighting ramps up to ±40 % over minutes, across the picture too (sun through a window),
  and the corridor lights switched down by 35 % for a minute, at once;
- dusk, then the day → night switch to infrared grey (colour removed, contrast × 1.35, sensor
  noise up to 4.3 grey levels, the infrared picture darkening to 0.35 of its level) for 7
  minutes, and back to colour at low light;
- people-like figures walking through (across, or towards the camera growing to 60 % of the
  picture's height), in groups of one to four every 25 s on average (more in view at once when
  groups overlap);
- sensor noise on every picture (2 grey levels by day, more in low light);
- encoder compression: CRF 23, with spells at CRF 30, 36 and 38;
- camera vibrations: a jitter of 0.08 % of the width, and gusts of wind shifting the picture by
  up to 0.5 % of the width and turning it by up to 0.15°.

The privacy masks are drawn last, by the camera, over whatever its sensor saw: over people, in
infrared, and over a cover held in front of the lens (the labelled set draws covers over them).

Every condition raised (``Status.changes`` with ``active``) is a false alarm. Beside the count
the report gives the margins: the lowest structure against the cover threshold, the lowest
sharpness ratio against ``defocus_ratio``, the largest measured shift and rotation against the
move thresholds, keyframes not recognised, the most detail seen in a privacy zone against
``mask_detail``, and for each condition the longest run of keyframes whose single-keyframe
verdict (``gateway.analysis.judge.verdict``) showed it, against ``min_duration``.

Detection delay: per scene, a camera learned over ``--healthy`` seconds of healthy keyframes; for
each tamper (covered: uniform, black, 80 % from one side, sprayed; defocused: disc blur of 4 and
8 pixels at 704 wide; moved: shifted by 8 % and 15 % of the width, turned by 10°; privacy mask
removed, on scenes with zones; the side of a partial cover and the direction of a move turn
from one phase and scene to the next) and each phase of ``--phases`` spread over one interval,
a copy of that camera sees two healthy keyframes, then the tamper from time T (= a keyframe's
time + phase × interval; keyframes at or after T show it) until the condition is raised, four
seconds more, then the healthy picture again from time R (also at the phase) until it is
cleared. Delays
are from T to the raise and from R to the clear; the earliest possible is ``min_duration`` plus
the wait for the next keyframe (10 to 12 s by default), the bound ``min_duration`` + 2
``interval``. Any other condition raised meanwhile is reported too.

Usage: python bench/analysis_timeline.py [--scenes corridor0 ... rocket] [--minutes 30]
[--phases 4] [--healthy 60] [--seed 2026] [--out DIR]
A scene is ``corridorN`` or a scikit-image photograph's name, with ``@WxH`` for another size
than 704x576. Writes analysis_timeline.json and analysis_timeline.md to --out (bench/results/
by default).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from analysis_scenes import (
    Image,
    Scene,
    corridor_scene,
    defocus,
    infrared,
    lighting,
    mask,
    partial_cover,
    photo_scene,
    sprayed,
    uniform,
)
from analysis_set import encode_keyframe

from gateway.analysis import CameraMonitor, Condition, KeyframeDecoder, Settings, Status
from gateway.analysis.judge import Reference, cover_threshold, verdict

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REFERENCE_RUN = 1800.0
"""The timeline's times are given for a 30-minute run and scaled to the run's length."""

DEFAULT_SCENES = ("corridor0", "corridor1", "corridor2@1280x720", "astronaut", "rocket")
VERDICT_NAMES: dict[str, Condition] = {
    "covered": "covered",
    "defocused": "defocused",
    "moved": "moved",
    "privacy": "privacy_mask_missing",
}


# -- the camera's picture ---------------------------------------------------------------------


@dataclass(frozen=True)
class Walker:
    """A person-like figure in view from ``start`` for ``duration`` seconds, moving from
    ``(x0, y0)`` to ``(x1, y1)`` (feet, fractions of the picture) and growing from ``size0`` to
    ``size1`` (fractions of the picture's height)."""

    start: float
    duration: float
    x0: float
    x1: float
    y0: float
    y1: float
    size0: float
    size1: float
    colour: tuple[int, int, int]

    def at(self, t: float) -> tuple[float, float, float] | None:
        u = (t - self.start) / self.duration
        if not 0.0 <= u <= 1.0:
            return None
        return (
            self.x0 + (self.x1 - self.x0) * u,
            self.y0 + (self.y1 - self.y0) * u,
            self.size0 + (self.size1 - self.size0) * u,
        )


@dataclass(frozen=True)
class Look:
    """Everything that makes one keyframe's picture."""

    dx: float = 0.0
    """Scene's shift in the picture, in pixels (vibration, or the camera turned)."""
    dy: float = 0.0
    angle: float = 0.0
    gain_left: float = 1.0
    gain_right: float = 1.0
    infrared: bool = False
    ir_gain: float = 1.0
    ir_contrast: float = 1.35
    people: tuple[tuple[float, float, float, tuple[int, int, int]], ...] = ()
    """Figures in view: x, y (feet, fractions), size (fraction of the height), colour."""
    sigma: float = 2.0
    """Sensor noise, in grey levels."""
    crf: int = 23
    blur: float = 0.0
    """Defocus: disc radius in pixels of the camera's picture (0: in focus)."""
    cover: str | None = None
    """``uniform``, ``black``, ``partial80`` or ``sprayed``."""
    cover_seed: int = 0
    masked: bool = True
    """The camera masks its privacy zones."""


def draw_person(
    picture: Image, x: float, y: float, size: float, colour: tuple[int, int, int]
) -> None:
    """A head, a body and legs (the figure of ``analysis_scenes.people``), feet at ``(x, y)``
    in pixels, ``size`` pixels tall."""
    body = [int(c) for c in colour]
    cv2.ellipse(
        picture,
        (int(x), int(y - size * 0.45)),
        (max(1, int(size * 0.17)), max(1, int(size * 0.35))),
        0,
        0,
        360,
        body,
        -1,
    )
    cv2.circle(
        picture, (int(x), int(y - size * 0.9)), max(1, int(size * 0.09)), (170, 130, 110), -1
    )
    cv2.rectangle(
        picture,
        (int(x - size * 0.1), int(y - size * 0.2)),
        (int(x + size * 0.1), int(y)),
        [c // 2 for c in body],
        -1,
    )


def sensor(picture: Image, rng: np.random.Generator, sigma: float) -> Image:
    """Gaussian sensor noise of ``sigma`` grey levels."""
    noisy = rng.standard_normal(picture.shape, dtype=np.float32)
    noisy *= sigma
    noisy += picture
    np.clip(noisy, 0, 255, out=noisy)
    return noisy.astype(np.uint8)


def render(scene: Scene, look: Look, rng: np.random.Generator) -> Image:
    """The picture the camera sends (RGB): the view, the people in it, the light, infrared,
    the lens (defocus, a cover), the sensor's noise, then the camera's privacy masks."""
    picture = scene.view(dx=look.dx, dy=look.dy, angle=look.angle)
    h, w = picture.shape[:2]
    for x, y, size, colour in look.people:
        draw_person(picture, x * w, y * h, size * h, colour)
    if look.gain_left != 1.0 or look.gain_right != 1.0:
        picture = lighting(picture, look.gain_left, look.gain_right)
    if look.infrared:
        picture = infrared(picture, look.ir_gain, look.ir_contrast)
    if look.blur > 0:
        picture = defocus(picture, look.blur)
    if look.cover is not None:
        own = np.random.default_rng(look.cover_seed)  # the same cover on every keyframe
        if look.cover == "uniform":
            picture = uniform(picture.shape, own, int(own.integers(60, 220)))
        elif look.cover == "black":
            picture = uniform(picture.shape, own, int(own.integers(2, 14)), 4.0)
        elif look.cover == "partial80":
            picture = partial_cover(picture, own, 0.8, look.cover_seed % 4)
        elif look.cover == "sprayed":
            picture = sprayed(picture, own)
        else:
            raise ValueError(f"unknown cover {look.cover!r}")
    picture = sensor(picture, rng, look.sigma)
    if look.masked and scene.zones:
        picture = mask(picture, scene.zones)
    return picture


def parse_scene(spec: str) -> Scene:
    """``corridorN`` or a scikit-image photograph, with an optional ``@WxH`` size."""
    name, _, size = spec.partition("@")
    width, height = (int(v) for v in size.split("x")) if size else (704, 576)
    if name.startswith("corridor") and name[len("corridor") :].isdigit():
        return corridor_scene(int(name[len("corridor") :]), width, height)
    return photo_scene(name, width, height)


# -- the 30 minutes ---------------------------------------------------------------------------


def interpolate(points: tuple[tuple[float, ...], ...], t: float) -> tuple[float, ...]:
    """Piecewise-linear values at ``t`` from ``(time, value, ...)`` points."""
    if t <= points[0][0]:
        return points[0][1:]
    for a, b in itertools.pairwise(points):
        if a[0] <= t <= b[0]:
            u = (t - a[0]) / (b[0] - a[0]) if b[0] > a[0] else 1.0
            return tuple(va + (vb - va) * u for va, vb in zip(a[1:], b[1:], strict=True))
    return points[-1][1:]


LIGHT: tuple[tuple[float, float, float], ...] = (
    # time (s of 30 min), gain on the left, gain on the right
    (0, 1.0, 1.0),
    (120, 1.0, 1.0),
    (300, 1.4, 1.2),  # sun coming in
    (420, 1.4, 1.4),
    (600, 0.6, 0.8),  # clouds
    (660, 0.6, 0.6),
    (780, 1.0, 1.4),  # sun across the picture
    (840, 0.8, 0.8),
    (900, 0.6, 0.6),  # dusk
    (1320, 0.6, 0.6),
    (1440, 1.0, 1.0),  # dawn
    (1620, 1.4, 0.6),  # a ramp across the picture
    (1800, 1.0, 1.0),
)
NIGHT = (900.0, 1320.0)
"""Infrared from the first time to the second."""
IR_GAIN: tuple[tuple[float, float], ...] = ((900, 1.0), (1080, 0.5), (1200, 0.35), (1320, 0.6))
LIGHTS_DOWN = (1440.0, 1500.0, 0.65)
"""Corridor lights switched down (start, end, gain), at once both ways."""
CRF = ((480.0, 600.0, 30), (1000.0, 1100.0, 36), (1680.0, 1740.0, 38))
"""Spells of heavier compression (start, end, CRF); CRF 23 otherwise."""
GUSTS = ((200.0, 260.0), (1150.0, 1200.0), (1550.0, 1610.0))
"""Spells of wind shaking the camera."""
JITTER = 0.0008
"""Standard deviation of the camera's shake outside gusts, as a share of the width."""
GUST_SHIFT = 0.005
"""Largest shift in a gust (and overall), as a share of the width."""
GUST_ANGLE = 0.15
"""Largest rotation in a gust, in degrees."""
GROUP_EVERY = 25.0
"""Mean seconds between groups of people walking through."""


class Timeline:
    """What the camera sees over a clean run of ``duration`` seconds (see the module's
    docstring); times given for 30 minutes are scaled, people walk at their own pace."""

    def __init__(self, duration: float, width: int, rng: np.random.Generator) -> None:
        self.duration = duration
        self.width = width
        self.scale = duration / REFERENCE_RUN
        self.rng = rng
        self.walkers = self._walkers()

    def _walkers(self) -> list[Walker]:
        rng, out = self.rng, list[Walker]()
        t = float(rng.exponential(GROUP_EVERY / 2))
        while t < self.duration:
            count = int(rng.choice([1, 2, 3, 4], p=[0.55, 0.25, 0.12, 0.08]))
            for _ in range(count):
                start = t + float(rng.uniform(0, 4))
                r, g, b = (int(v) for v in rng.integers(0, 255, 3))
                colour = (r, g, b)
                if rng.random() < 0.7:  # across the view
                    u = float(rng.random())
                    y, size = 0.55 + 0.4 * u, 0.25 + 0.25 * u
                    x0, x1 = (-0.1, 1.1) if rng.random() < 0.5 else (1.1, -0.1)
                    duration = float(rng.uniform(6, 20))
                    walker = Walker(start, duration, x0, x1, y, y, size, size, colour)
                else:  # towards the camera, growing
                    x = float(rng.uniform(0.2, 0.8))
                    duration = float(rng.uniform(8, 16))
                    walker = Walker(start, duration, x, x, 0.6, 1.0, 0.25, 0.6, colour)
                out.append(walker)
            t += float(rng.exponential(GROUP_EVERY))
        return out

    def _in(self, spells: Iterable[tuple[float, ...]], t: float) -> tuple[float, ...] | None:
        for spell in spells:
            if spell[0] * self.scale <= t < spell[1] * self.scale:
                return spell
        return None

    def phase(self, t: float) -> str:
        r = t / self.scale if self.scale else 0.0
        if NIGHT[0] <= r < NIGHT[1]:
            return "infrared"
        if LIGHTS_DOWN[0] <= r < LIGHTS_DOWN[1]:
            return "lights down"
        if 840 <= r < NIGHT[0]:
            return "dusk"
        if NIGHT[1] <= r < 1440:
            return "dawn"
        return "day"

    def people(self, t: float) -> tuple[tuple[float, float, float, tuple[int, int, int]], ...]:
        """The figures in view at ``t``: x, y, size, colour."""
        return tuple((*where, w.colour) for w in self.walkers if (where := w.at(t)) is not None)

    def look(self, t: float) -> Look:
        """The keyframe at ``t`` (draws the camera's shake: call once per keyframe, in order)."""
        rng, r = self.rng, t / self.scale if self.scale else 0.0
        if self._in(GUSTS, t):
            radius = GUST_SHIFT * self.width * math.sqrt(float(rng.random()))
            bearing = float(rng.uniform(0, 2 * math.pi))
            dx, dy = radius * math.cos(bearing), radius * math.sin(bearing)
            angle = float(rng.uniform(-GUST_ANGLE, GUST_ANGLE))
        else:
            limit = GUST_SHIFT * self.width
            dx, dy = (
                float(np.clip(rng.normal(0, JITTER * self.width), -limit, limit)) for _ in "xy"
            )
            dx, dy = (dx, dy) if math.hypot(dx, dy) <= limit else (dx / 2, dy / 2)
            angle = 0.0
        people = self.people(t)
        spell = self._in(CRF, t)
        crf = int(spell[2]) if spell else 23
        gain_left, gain_right = interpolate(LIGHT, r)
        if NIGHT[0] <= r < NIGHT[1]:
            (ir_gain,) = interpolate(IR_GAIN, r)
            return Look(
                dx=dx,
                dy=dy,
                angle=angle,
                infrared=True,
                ir_gain=ir_gain,
                people=people,
                sigma=3.0 + 2.0 * (1.0 - ir_gain),
                crf=crf,
            )
        if LIGHTS_DOWN[0] <= r < LIGHTS_DOWN[1]:
            gain_left, gain_right = gain_left * LIGHTS_DOWN[2], gain_right * LIGHTS_DOWN[2]
        low = 1.0 - min(gain_left, gain_right)
        return Look(
            dx=dx,
            dy=dy,
            angle=angle,
            gain_left=gain_left,
            gain_right=gain_right,
            people=people,
            sigma=2.0 + 2.5 * max(0.0, low),
            crf=crf,
        )


# -- a camera ---------------------------------------------------------------------------------


@dataclass
class Cost:
    """Processor time spent making pictures and keyframes, and analysing them."""

    keyframes: int = 0
    synthesis: float = 0.0
    """Rendering the picture and encoding it (libx264): the simulated camera's work."""
    analysis: float = 0.0
    """Decoding the keyframe and ``CameraMonitor.observe``: the gateway's work."""


@dataclass
class Camera:
    """One simulated camera: its scene, its monitor and decoder, its sensor's noise."""

    scene: Scene
    monitor: CameraMonitor
    decoder: KeyframeDecoder
    rng: np.random.Generator
    cost: Cost = field(default_factory=Cost)

    @classmethod
    def new(cls, scene: Scene, rng: np.random.Generator, cost: Cost | None = None) -> Camera:
        monitor = CameraMonitor(Settings(zones=scene.zones))
        return cls(scene, monitor, KeyframeDecoder("h264"), rng, cost or Cost())

    def show(self, look: Look, at: float) -> Status:
        """One keyframe: rendered, encoded as H.264, decoded, observed at time ``at``."""
        started = time.process_time()
        data, _ = encode_keyframe(render(self.scene, look, self.rng), look.crf)
        decoding = time.process_time()
        status = self.monitor.observe(self.decoder.decode_bytes(data), at)
        done = time.process_time()
        self.cost.keyframes += 1
        self.cost.synthesis += decoding - started
        self.cost.analysis += done - decoding
        return status


def figures(status: Status, reference: Reference | None, settings: Settings) -> dict[str, Any]:
    """A keyframe's judgement in numbers, beside the thresholds they are held to."""
    j = status.judgement
    d = j.displacement
    return {
        "state": status.state,
        "structure": round(j.measures.structure, 3),
        "cover_threshold": round(cover_threshold(settings, reference), 3),
        "lost": None if j.lost is None else round(j.lost, 3),
        "sharpness_ratio": None if j.sharpness_ratio is None else round(j.sharpness_ratio, 3),
        "shift_percent": None if d is None else round(d.percent, 3),
        "rotation": None if d is None else round(d.rotation, 3),
        "inliers": None if d is None else d.inliers,
        "matches": None if d is None else d.matches,
        "zones": {z.zone: round(z.detail, 2) for z in j.zones},
        "brightness": round(j.measures.brightness, 3),
        "verdict": sorted(verdict(j, settings)),
    }


# -- the clean run ----------------------------------------------------------------------------


@dataclass
class Margins:
    """The closest a clean run came to each threshold."""

    structure: float = math.inf
    structure_threshold: float = 0.0
    lost: float = 0.0
    ratio_low: float = math.inf
    ratio_high: float = 0.0
    shift: float = 0.0
    rotation: float = 0.0
    unrecognised: int = 0
    inliers: int = 1 << 30
    zone_detail: float = 0.0
    raw: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VERDICT_NAMES, 0))
    """Keyframes whose single-keyframe verdict showed each condition."""
    longest: dict[str, float] = field(default_factory=lambda: dict.fromkeys(VERDICT_NAMES, 0.0))
    """Longest run, in seconds from its first keyframe to its last, of such keyframes."""
    runs: dict[str, float | None] = field(
        default_factory=lambda: dict.fromkeys(VERDICT_NAMES, None)
    )

    def take(self, status: Status, reference: Reference | None, settings: Settings) -> None:
        j = status.judgement
        shown = verdict(j, settings)
        if reference is not None:
            threshold = cover_threshold(settings, reference)
            if j.measures.structure - threshold < self.structure - self.structure_threshold:
                self.structure, self.structure_threshold = j.measures.structure, threshold
            if j.lost is not None:
                self.lost = max(self.lost, j.lost)
            if j.sharpness_ratio is not None:
                self.ratio_low = min(self.ratio_low, j.sharpness_ratio)
                self.ratio_high = max(self.ratio_high, j.sharpness_ratio)
            d = j.displacement
            if d is not None:
                self.shift = max(self.shift, d.percent)
                self.rotation = max(self.rotation, abs(d.rotation))
                self.inliers = min(self.inliers, d.inliers)
            elif not j.covered:
                self.unrecognised += 1
        for z in j.zones:
            self.zone_detail = max(self.zone_detail, z.detail)
        for name in VERDICT_NAMES:
            self.raw[name] += name in shown

    def streaks(self, shown: frozenset[str], at: float) -> None:
        for name in VERDICT_NAMES:
            if name in shown:
                first = self.runs[name]
                if first is None:
                    self.runs[name] = first = at
                self.longest[name] = max(self.longest[name], at - first)
            else:
                self.runs[name] = None

    def report(self) -> dict[str, Any]:
        return {
            "structure_min": round(self.structure, 3),
            "cover_threshold_then": round(self.structure_threshold, 3),
            "lost_max": round(self.lost, 3),
            "sharpness_ratio_min": round(self.ratio_low, 3),
            "sharpness_ratio_max": round(self.ratio_high, 3),
            "shift_percent_max": round(self.shift, 3),
            "rotation_max": round(self.rotation, 3),
            "unrecognised": self.unrecognised,
            "inliers_min": self.inliers,
            "zone_detail_max": round(self.zone_detail, 2),
            "raw_keyframes": self.raw,
            "longest_raw_run_s": self.longest,
        }


def clean_run(scene: Scene, duration: float, seed: int, cost: Cost | None = None) -> dict[str, Any]:
    """One camera over a clean run of ``duration`` seconds (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    camera = Camera.new(scene, rng, cost)
    s = camera.monitor.settings
    timeline = Timeline(duration, scene.width, rng)
    margins = Margins()
    recent: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    alarms: list[dict[str, Any]] = []
    clears: list[dict[str, Any]] = []
    minutes: list[dict[str, Any]] = []
    refreshes: list[dict[str, Any]] = []
    learned_at: float | None = None
    state = camera.monitor.state
    count = round(duration / s.interval)
    for k in range(count):
        at = k * s.interval
        look = timeline.look(at)
        judged_with = camera.monitor.reference
        taken_at = None if judged_with is None else judged_with.taken_at
        status = camera.show(look, at)
        reference = camera.monitor.reference
        if learned_at is None and reference is not None:
            learned_at = at
        elif reference is not None and taken_at is not None and reference.taken_at != taken_at:
            refreshes.append({"at": at, "phase": timeline.phase(at)})
        numbers = {"at": at, "phase": timeline.phase(at), **figures(status, judged_with, s)}
        recent = [*recent, numbers][-(round(s.min_duration / s.interval) + 2) :]
        margins.take(status, judged_with, s)
        margins.streaks(verdict(status.judgement, s), at)
        if status.state != state:
            state = status.state
            states.append({"at": at, "state": state})
        for change in status.changes:
            record = {"condition": change.condition, "at": change.at, "phase": numbers["phase"]}
            if change.active:
                alarms.append({**record, "keyframes": recent})
            else:
                clears.append(record)
        minute = int(at // 60)
        if not minutes or minutes[-1]["minute"] != minute:
            minutes.append(
                {
                    "minute": minute,
                    "phase": numbers["phase"],
                    "people_max": 0,
                    "crf_max": 0,
                    "structure_min": 1.0,
                    "sharpness_ratio_min": None,
                    "shift_percent_max": 0.0,
                    "zone_detail_max": 0.0,
                    "raw": [],
                }
            )
        m = minutes[-1]
        m["people_max"] = max(m["people_max"], len(look.people))
        m["crf_max"] = max(m["crf_max"], look.crf)
        m["structure_min"] = min(m["structure_min"], numbers["structure"])
        if numbers["sharpness_ratio"] is not None:
            low = m["sharpness_ratio_min"]
            ratio = numbers["sharpness_ratio"]
            m["sharpness_ratio_min"] = ratio if low is None else min(low, ratio)
        m["shift_percent_max"] = max(m["shift_percent_max"], numbers["shift_percent"] or 0.0)
        m["zone_detail_max"] = max(m["zone_detail_max"], *numbers["zones"].values(), 0.0)
        m["raw"] = sorted(set(m["raw"]) | set(numbers["verdict"]))
    people = [len(timeline.people(k * s.interval)) for k in range(count)]
    phases: dict[str, int] = {}
    for k in range(count):
        name = timeline.phase(k * s.interval)
        phases[name] = phases.get(name, 0) + 1
    return {
        "scene": scene.name,
        "size": f"{scene.width}x{scene.height}",
        "zones": len(scene.zones),
        "keyframes": count,
        "simulated_s": count * s.interval,
        "learned_at": learned_at,
        "states": states,
        "false_alarms": alarms,
        "clears": clears,
        "refreshes": refreshes,
        "phases": phases,
        "walkers": len(timeline.walkers),
        "keyframes_with_people": sum(1 for p in people if p),
        "people_max": max(people, default=0),
        "margins": margins.report(),
        "minutes": minutes,
    }


# -- detection delays -------------------------------------------------------------------------


@dataclass(frozen=True)
class Tamper:
    """Something done to a healthy camera, and the condition it must raise."""

    name: str
    condition: Condition
    apply: Callable[[Look, Scene, int], Look]
    """The tampered keyframe from the healthy one; the int is the trial's variant (the cover's
    seed, the side it comes from, the direction of a move)."""
    describe: Callable[[int], str] = lambda variant: ""
    """The variant in words."""
    zones_only: bool = False


SIDES = ("from the left", "from the right", "from the bottom", "from the top")
"""Side of a partial cover, by ``variant % 4`` (as ``analysis_scenes.partial_cover``)."""


def _sign(variant: int) -> float:
    return 1.0 if variant % 2 == 0 else -1.0


def _cover(kind: str) -> Callable[[Look, Scene, int], Look]:
    return lambda look, scene, variant: replace(look, cover=kind, cover_seed=variant)


def _blur(radius: float) -> Callable[[Look, Scene, int], Look]:
    return lambda look, scene, variant: replace(look, blur=radius * scene.width / 704)


def _shift(share: float) -> Callable[[Look, Scene, int], Look]:
    return lambda look, scene, v: replace(look, dx=look.dx + _sign(v) * share * scene.width)


def _turn(degrees: float) -> Callable[[Look, Scene, int], Look]:
    return lambda look, scene, v: replace(look, angle=look.angle + _sign(v) * degrees)


TAMPERS: tuple[Tamper, ...] = (
    Tamper("covered: uniform", "covered", _cover("uniform")),
    Tamper("covered: black", "covered", _cover("black")),
    Tamper(
        "covered: 80 % from one side",
        "covered",
        _cover("partial80"),
        lambda v: SIDES[v % 4],
    ),
    Tamper("covered: sprayed", "covered", _cover("sprayed")),
    Tamper("defocused: 4 px", "defocused", _blur(4)),
    Tamper("defocused: 8 px", "defocused", _blur(8)),
    Tamper("moved: 8 % shift", "moved", _shift(0.08), lambda v: ("right", "left")[v % 2]),
    Tamper("moved: 15 % shift", "moved", _shift(0.15), lambda v: ("right", "left")[v % 2]),
    Tamper(
        "moved: 10° turn",
        "moved",
        _turn(10),
        lambda v: ("counter-clockwise", "clockwise")[v % 2],
    ),
    Tamper(
        "privacy mask removed",
        "privacy_mask_missing",
        lambda look, scene, variant: replace(look, masked=False),
        zones_only=True,
    ),
)

HOLD = 4.0
"""Seconds the tamper is kept after it was raised, before the camera is restored."""
TIMEOUT = 60.0
"""Seconds a tamper (or a restored camera) is given to be raised (or cleared)."""


def healthy(width: int, rng: np.random.Generator) -> Look:
    """A healthy keyframe of the delay trials: daylight, sensor noise, the camera's jitter."""
    limit = GUST_SHIFT * width
    dx, dy = (float(np.clip(rng.normal(0, JITTER * width), -limit, limit)) for _ in "xy")
    return Look(dx=dx, dy=dy, sigma=2.0)


@dataclass
class Learned:
    """A camera learned on healthy keyframes, to copy for each trial."""

    camera: Camera
    next_at: float


def learned_camera(scene: Scene, seconds: float, seed: int, cost: Cost | None = None) -> Learned:
    """A camera shown ``seconds`` of healthy keyframes: learned and ok."""
    rng = np.random.default_rng(seed)
    camera = Camera.new(scene, rng, cost)
    interval = camera.monitor.settings.interval
    count = max(round(seconds / interval), camera.monitor.settings.learning_frames + 1)
    for k in range(count):
        status = camera.show(healthy(scene.width, rng), k * interval)
    if camera.monitor.reference is None or status.state != "ok" or status.conditions:
        raise RuntimeError(f"{scene.name}: not learned and healthy after {count} keyframes")
    return Learned(camera, count * interval)


def delay_trial(
    learned: Learned, tamper: Tamper, phase: float, variant: int, seed: int
) -> dict[str, Any]:
    """``tamper`` (its ``variant``) applied to a copy of the learned camera at ``phase`` (a
    share of the interval) after a keyframe, until raised, then removed until cleared."""
    base = learned.camera
    rng = np.random.default_rng(seed)
    camera = Camera(base.scene, copy.deepcopy(base.monitor), base.decoder, rng, base.cost)
    s = camera.monitor.settings
    scene, interval = camera.scene, s.interval
    at = learned.next_at
    keyframes: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []

    def step(tampered: bool) -> tuple[Status, float]:
        nonlocal at
        shown_at, at = at, at + interval
        look = healthy(scene.width, rng)
        status = camera.show(tamper.apply(look, scene, variant) if tampered else look, shown_at)
        keyframes.append(
            {
                "at": shown_at,
                "tampered": tampered,
                **figures(status, camera.monitor.reference, s),
            }
        )
        others.extend(
            {"condition": c.condition, "at": c.at}
            for c in status.changes
            if c.active and c.condition != tamper.condition
        )
        return status, shown_at

    def changed(status: Status, active: bool) -> bool:
        return any(c.condition == tamper.condition and c.active == active for c in status.changes)

    applied = at + 2 * interval + phase * interval
    while at < applied:
        step(False)
    raised: float | None = None
    while raised is None and at <= applied + TIMEOUT:
        status, shown_at = step(True)
        raised = shown_at if changed(status, True) else None
    restored: float | None = None
    cleared: float | None = None
    if raised is not None:
        restored = raised + HOLD + phase * interval
        while at < restored:
            step(True)
        while cleared is None and at <= restored + TIMEOUT:
            status, shown_at = step(False)
            cleared = shown_at if changed(status, False) else None
        for _ in range(2):
            step(False)
    bound = s.min_duration + 2 * interval
    raise_delay = None if raised is None else raised - applied
    clear_delay = None if cleared is None or restored is None else cleared - restored
    slow = raise_delay is None or raise_delay > bound or clear_delay is None or clear_delay > bound
    return {
        "scene": scene.name,
        "tamper": tamper.name,
        "variant": tamper.describe(variant),
        "condition": tamper.condition,
        "phase": phase,
        "applied_at": applied,
        "raised_at": raised,
        "raise_delay": raise_delay,
        "restored_at": restored,
        "cleared_at": cleared,
        "clear_delay": clear_delay,
        "others": others,
        "within_bound": not slow,
        "keyframes": keyframes if slow or others else [],
    }


def spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def summarise(trials: list[dict[str, Any]], bound: float) -> list[dict[str, Any]]:
    out = []
    for tamper in TAMPERS:
        mine = [t for t in trials if t["tamper"] == tamper.name]
        if not mine:
            continue
        raises = [t["raise_delay"] for t in mine if t["raise_delay"] is not None]
        clears = [t["clear_delay"] for t in mine if t["clear_delay"] is not None]
        out.append(
            {
                "tamper": tamper.name,
                "condition": tamper.condition,
                "trials": len(mine),
                "scenes": len({t["scene"] for t in mine}),
                "raised": len(raises),
                "raise": spread(raises),
                "raise_within": sum(1 for d in raises if d <= bound),
                "cleared": len(clears),
                "clear": spread(clears),
                "clear_within": sum(1 for d in clears if d <= bound),
                "others": sum(len(t["others"]) for t in mine),
                "met": all(t["within_bound"] and not t["others"] for t in mine),
            }
        )
    return out


# -- the report -------------------------------------------------------------------------------


def _s(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _delays(d: dict[str, float] | None) -> str:
    return "–" if d is None else f"{d['min']:.1f} / {d['median']:.1f} / {d['max']:.1f} s"


def ranges(keyframes: list[dict[str, Any]]) -> str:
    """The spread of a run of keyframes' figures, in words."""
    verdicts: dict[str, int] = {}
    for k in keyframes:
        for v in k["verdict"] or ["none"]:
            verdicts[v] = verdicts.get(v, 0) + 1
    parts = [
        "verdicts " + ", ".join(f"{v} {n}" for v, n in sorted(verdicts.items())),
        "states " + ", ".join(sorted({k["state"] for k in keyframes})),
    ]
    for key, label in (
        ("structure", "structure"),
        ("lost", "lost"),
        ("sharpness_ratio", "sharpness ratio"),
        ("shift_percent", "shift %"),
    ):
        values = [k[key] for k in keyframes if k[key] is not None]
        missing = len(keyframes) - len(values)
        if not values:
            text = "not recognised" if key == "shift_percent" else "none"
        elif min(values) == max(values):
            text = f"{min(values):g}"
        else:
            text = f"{min(values):g}–{max(values):g}"
        parts.append(f"{label} {text}" + (f" ({missing} without)" if missing and values else ""))
    return "; ".join(parts)


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    bound = result["bound_s"]
    runs = result["clean"]
    keyframes = sum(r["keyframes"] for r in runs)
    alarms = [a | {"scene": r["scene"]} for r in runs for a in r["false_alarms"]]
    lines = [
        "# Camera integrity over time: clean runs and detection delays",
        "",
        f"{result['when']} on {result['host']}: every keyframe rendered, encoded as one H.264 "
        f"keyframe (libx264) and decoded by `KeyframeDecoder`, then given to one `CameraMonitor` "
        f"per camera at its simulated time. Settings: `min_duration` {s['min_duration']:g} s, "
        f"`interval` {s['interval']:g} s, so the bound on a delay is {bound:g} s. "
        f"OpenCV {result['opencv']}, PyAV {result['pyav']}.",
        "",
        f"## Clean runs: {len(alarms)} false alarms over {keyframes} keyframes of "
        f"{len(runs)} scenes ({result['minutes']:g} simulated minutes each)",
        "",
        "Each run: lighting ramps of ±40 % over minutes (across the picture too) and the lights "
        "down by 35 % for a minute at once; dusk, the switch to infrared grey (contrast × 1.35, "
        "noise up to 4.3 grey levels, darkening to 0.35) for 7 minutes and back to colour; "
        "people walking through (groups of one to four, overlapping at times, some coming "
        "towards the camera to 60 % of its height); sensor noise; CRF 23 with spells at 30, 36 "
        "and 38; the camera shaken by up to 0.5 % of the width and 0.15° in gusts (times for "
        "30 minutes; see the script's docstring).",
        "",
        "| scene | size | keyframes | learned at | reference refreshed at | false alarms | states "
        "| walkers | keyframes with people | most at once |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        states = ", ".join(f"{x['state']} at {x['at']:g} s" for x in r["states"]) or "–"
        refreshed = ", ".join(f"{x['at']:g} s ({x['phase']})" for x in r["refreshes"]) or "–"
        lines.append(
            f"| {r['scene']} | {r['size']} | {r['keyframes']} | {_s(r['learned_at'], 0)} s "
            f"| {refreshed} | {len(r['false_alarms'])} | {states} | {r['walkers']} "
            f"| {r['keyframes_with_people']} | {r['people_max']} |"
        )
    lines += [
        "",
        "Closest to each threshold (after learning; the threshold in brackets):",
        "",
        "| scene | lowest structure (cover threshold then) | learned detail lost, most "
        f"({s['cover_lost']:g}) | sharpness ratio, range ({s['defocus_ratio']:g}) "
        f"| shift, most ({s['move_percent']:g} %) | rotation, most ({s['move_degrees']:g}°) "
        f"| keyframes not recognised | fewest inliers | zone detail, most ({s['mask_detail']:g}) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        m = r["margins"]
        lines.append(
            f"| {r['scene']} | {m['structure_min']:.3f} ({m['cover_threshold_then']:.3f}) "
            f"| {m['lost_max']:.3f} "
            f"| {m['sharpness_ratio_min']:.3f}–{m['sharpness_ratio_max']:.3f} "
            f"| {m['shift_percent_max']:.3f} % | {m['rotation_max']:.2f}° | {m['unrecognised']} "
            f"| {m['inliers_min']} | {m['zone_detail_max']:.2f} |"
        )
    lines += [
        "",
        "Keyframes whose single-keyframe verdict showed a condition (the debounce must absorb "
        f"them), and the longest run of such keyframes, first to last, against the "
        f"{s['min_duration']:g} s a condition must hold:",
        "",
        "| scene | " + " | ".join(VERDICT_NAMES) + " |",
        "|---|" + "---|" * len(VERDICT_NAMES),
    ]
    for r in runs:
        m = r["margins"]
        cells = [
            f"{m['raw_keyframes'][c]} ({m['longest_raw_run_s'][c]:g} s)"
            if m["raw_keyframes"][c]
            else "0"
            for c in VERDICT_NAMES
        ]
        lines.append(f"| {r['scene']} | " + " | ".join(cells) + " |")
    lines.append("")
    if alarms:
        lines += ["False alarms (the keyframes of the run that raised each):", ""]
        for a in alarms:
            lines.append(f"- {a['scene']}: {a['condition']} raised at {a['at']:g} s ({a['phase']})")
            for k in a["keyframes"]:
                lines.append(
                    f"  - {k['at']:g} s {k['phase']}: verdict {k['verdict'] or '–'}, structure "
                    f"{k['structure']} (threshold {k['cover_threshold']}), lost {k['lost']}, "
                    f"sharpness ratio {k['sharpness_ratio']}, shift {k['shift_percent']} %, "
                    f"rotation {k['rotation']}°, inliers {k['inliers']}/{k['matches']}, "
                    f"zones {k['zones']}"
                )
        lines.append("")
    else:
        lines += ["No false alarm.", ""]
    trials = result["trials"]
    summary = result["delays"]
    lines += [
        f"## Detection delays: {len(trials)} trials ({result['phases']} phases per tamper "
        "and scene)",
        "",
        f"A camera learned over {result['healthy_s']:g} s of healthy keyframes; the tamper at "
        "time T, a keyframe's time plus the phase (0 to 3/4 of the interval); delay from T "
        "to the raise, and from the camera's restoration to the clear (min / median / max). "
        f"The earliest possible is {s['min_duration']:g} s plus the wait for the next keyframe.",
        "",
        f"| tamper | condition | trials (scenes) | raised | raise delay | within {bound:g} s "
        f"| cleared | clear delay | within {bound:g} s | other conditions raised | met |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in summary:
        lines.append(
            f"| {d['tamper']} | {d['condition']} | {d['trials']} ({d['scenes']}) "
            f"| {d['raised']}/{d['trials']} | {_delays(d['raise'])} "
            f"| {d['raise_within']}/{d['trials']} | {d['cleared']}/{d['trials']} "
            f"| {_delays(d['clear'])} | {d['clear_within']}/{d['trials']} | {d['others']} "
            f"| {'yes' if d['met'] else '**no**'} |"
        )
    bad = [t for t in trials if not t["within_bound"] or t["others"]]
    lines.append("")
    if bad:
        lines += ["Trials over the bound, missed, or raising another condition:", ""]
        for t in bad:
            others = ", ".join(f"{o['condition']} at {o['at']:g} s" for o in t["others"])
            lines.append(
                f"- {t['scene']}, {t['tamper']}{' ' + t['variant'] if t['variant'] else ''}, "
                f"phase {t['phase']:g}: applied at "
                f"{t['applied_at']:g} s, raise delay {_s(t['raise_delay'])} s, clear delay "
                f"{_s(t['clear_delay'])} s{'; also raised ' + others if others else ''}"
            )
            tampered = [k for k in t["keyframes"] if k["tampered"]]
            for k in tampered[:3]:
                lines.append(
                    f"  - {k['at']:g} s: {k['state']}, verdict {k['verdict'] or '–'}, structure "
                    f"{k['structure']} (threshold {k['cover_threshold']}), lost {k['lost']}, "
                    f"sharpness ratio {k['sharpness_ratio']}, shift {k['shift_percent']} %, "
                    f"rotation {k['rotation']}°, zones {k['zones']}"
                )
            if tampered:
                lines.append(f"  - over its {len(tampered)} tampered keyframes: {ranges(tampered)}")
        lines.append("")
    else:
        lines += [
            f"Every trial was raised and cleared within {bound:g} s, nothing else raised.",
            "",
        ]
    c = result["cost"]
    lines += [
        "## Cost of the run",
        "",
        f"{c['keyframes']} keyframes in {c['wall_s']:.0f} s of wall time and {c['cpu_s']:.0f} s "
        f"of CPU (one process; OpenCV on one thread): per keyframe {c['synthesis_ms']:.1f} ms "
        f"to render and encode it, {c['analysis_ms']:.1f} ms to decode and analyse it.",
        "",
        f"Reproduce: `.venv/bin/python bench/analysis_timeline.py {result['args']}`",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scenes", nargs="+", default=list(DEFAULT_SCENES))
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--phases", type=int, default=4)
    parser.add_argument("--healthy", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    wall, cpu = time.monotonic(), time.process_time()
    cost = Cost()
    settings = Settings()
    runs, trials = [], []
    phases = [k / args.phases for k in range(args.phases)]
    for index, spec in enumerate(args.scenes):
        scene = parse_scene(spec)
        run = clean_run(scene, args.minutes * 60.0, args.seed + index, cost)
        runs.append(run)
        print(
            f"{scene.name}: {run['keyframes']} keyframes, {len(run['false_alarms'])} false "
            f"alarms ({time.monotonic() - wall:.0f} s)",
            flush=True,
        )
        learned = learned_camera(scene, args.healthy, args.seed + 1000 + index, cost)
        n = 0
        for tamper in TAMPERS:
            if tamper.zones_only and not scene.zones:
                continue
            for k, phase in enumerate(phases):
                # the variant (side, direction) turns with the scene: not tied to the phase
                seed = args.seed + 10_000 * (index + 1) + n
                trials.append(delay_trial(learned, tamper, phase, index + k, seed))
                n += 1
        print(f"{scene.name}: {n} trials ({time.monotonic() - wall:.0f} s)", flush=True)
    bound = settings.min_duration + 2 * settings.interval
    result: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
        "opencv": cv2.__version__,
        "pyav": av.__version__,
        "args": " ".join(
            [
                "--scenes",
                *args.scenes,
                f"--minutes {args.minutes:g} --phases {args.phases} --healthy {args.healthy:g}",
                f"--seed {args.seed}",
            ]
        ),
        "settings": {
            k: getattr(settings, k)
            for k in (
                "min_duration",
                "interval",
                "learning_frames",
                "cover_structure",
                "cover_relative",
                "cover_lost",
                "defocus_ratio",
                "defocus_clear",
                "move_percent",
                "move_degrees",
                "move_clear",
                "mask_detail",
                "mask_clear",
                "refresh_every",
            )
        },
        "bound_s": bound,
        "minutes": args.minutes,
        "phases": args.phases,
        "healthy_s": args.healthy,
        "cost": {
            "keyframes": cost.keyframes,
            "wall_s": round(time.monotonic() - wall, 1),
            "cpu_s": round(time.process_time() - cpu, 1),
            "synthesis_ms": round(1000 * cost.synthesis / max(1, cost.keyframes), 2),
            "analysis_ms": round(1000 * cost.analysis / max(1, cost.keyframes), 2),
        },
        "false_alarms": sum(len(r["false_alarms"]) for r in runs),
        "clean_keyframes": sum(r["keyframes"] for r in runs),
        "delays": summarise(trials, bound),
        "clean": runs,
        "trials": trials,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "analysis_timeline.json").write_text(
        json.dumps(result, indent=1) + "\n", encoding="utf-8"
    )
    text = markdown(result)
    (args.out / "analysis_timeline.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
