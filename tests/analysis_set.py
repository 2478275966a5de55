"""The labelled set of the analysis tests and of ``bench/analysis_quality.py``, and its scoring.

Each scene of ``analysis_scenes.py`` gives five learning pictures and labelled samples:
negatives (people walking by, lighting changed by ±40 % or ramped, sensor noise, the colour →
infrared switch, a dark infrared night, heavy compression, a 3 % turn, a 2° tilt) and positives
(covered: uniform, black, 80 % from one side, sprayed; defocused: several disc radii; moved:
turns of 6 to 20 % and tilts of 6 to 10°; a privacy mask removed). Each picture is encoded as
one H.264 keyframe (libx264) and decoded back through the analyser's own decoder.

Labels are sets of conditions (``covered``, ``defocused``, ``moved``, ``privacy``); a negative
has none. ``truth`` gives a move's true displacement of the scene in the picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np
from analysis_scenes import (
    Image,
    Scene,
    defocus,
    infrared,
    lighting,
    mask,
    night,
    noise,
    partial_cover,
    people,
    sprayed,
    uniform,
)

from gateway.analysis import CameraMonitor, Frame, KeyframeDecoder, Settings, judge
from gateway.analysis.judge import verdict

CLASSES = ("covered", "defocused", "moved", "privacy")


@dataclass(frozen=True)
class Sample:
    scene: str
    variant: str
    picture: Image  # RGB, what the camera films
    labels: frozenset[str]
    truth: tuple[float, float, float] | None = None  # dx, dy (pixels), angle (degrees)
    crf: int = 23


@dataclass
class SceneSet:
    scene: Scene
    masked: bool
    learning: list[Image] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)


def build(scene: Scene, rng: np.random.Generator, *, large: bool = False) -> SceneSet:
    """The learning pictures and the labelled samples of one scene."""
    masked = bool(scene.zones)
    w = scene.width
    cam = (lambda p: mask(p, scene.zones)) if masked else (lambda p: p)
    base = scene.view()
    out = SceneSet(scene, masked, learning=[cam(noise(base, rng, 1.5)) for _ in range(5)])
    neg = frozenset[str]()

    def add(
        variant: str,
        picture: Image,
        labels: frozenset[str] = neg,
        truth: tuple[float, float, float] | None = None,
        crf: int = 23,
    ) -> None:
        out.samples.append(Sample(scene.name, variant, picture, labels, truth, crf))

    reps = 3 if large else 1
    for k in range(reps):
        add("people", cam(people(base, rng, int(rng.integers(1, 4)))))
        add("lighting+40", cam(lighting(base, 1.4, 1.4)))
        add("lighting-40", cam(lighting(base, 0.6, 0.6)))
        add("ramp", cam(lighting(base, 0.6, 1.4) if k % 2 == 0 else lighting(base, 1.4, 0.6)))
        add("noise", cam(noise(base, rng, 7.0)))
        add("infrared", cam(infrared(base)))
        add("night", cam(night(base, rng)))
        add("compressed", cam(base), crf=40 + k)
        sx = (1 if rng.random() < 0.5 else -1) * 0.03 * w
        add("shift3%", cam(scene.view(dx=sx)), truth=(sx, 0.0, 0.0))
        add(
            "rot2",
            cam(scene.view(angle=2.0 * (1 if k % 2 == 0 else -1))),
            truth=(0.0, 0.0, 2.0 * (1 if k % 2 == 0 else -1)),
        )
        covered = frozenset({"covered"})
        add("uniform", uniform(base.shape, rng, int(rng.integers(60, 220))), covered)
        add("black", uniform(base.shape, rng, int(rng.integers(2, 14)), 4.0), covered)
        add("partial80", partial_cover(cam(base), rng, 0.8, int(rng.integers(0, 4))), covered)
        add("sprayed", sprayed(cam(base), rng), covered)
        for radius in (4, 6, 9) if k == 0 else (5, 8):
            add(f"defocus{radius}", cam(defocus(base, radius * w / 704)), frozenset({"defocused"}))
        moves = [(0.06, 0, 0), (-0.10, 0, 0), (0.2, 0, 0), (0, 0.08, 0), (0, 0, 6.0), (0, 0, -10.0)]
        if large:
            moves += [(-0.06, 0.04, 0), (0.15, -0.05, 0), (0, 0, 8.0)]
        for fx, fy, ang in moves[k::reps] if large else moves:
            dx, dy = fx * w, fy * w
            add(
                f"move({fx:+.0%},{fy:+.0%},{ang:+.0f}°)",
                cam(scene.view(dx=dx, dy=dy, angle=ang)),
                frozenset({"moved"}),
                (dx, dy, ang),
            )
        if masked:
            add("mask-removed", base, frozenset({"privacy"}))
    return out


def encode_keyframe(picture: Image, crf: int = 23) -> tuple[bytes, bytes | None]:
    """``picture`` (RGB) as one H.264 keyframe as a camera sends it: Annex B, parameter sets in
    band; returns the packet's bytes and the encoder's extradata (``None`` here)."""
    h, w = picture.shape[:2]
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuv420p"
    ctx.time_base = Fraction(1, 25)
    ctx.options = {"crf": str(crf), "preset": "veryfast", "tune": "zerolatency"}
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
    frame.pts = 0
    packets = list(ctx.encode(frame)) + list(ctx.encode(None))
    extradata = ctx.extradata
    return bytes(packets[0]), bytes(extradata) if extradata else None


def through_codec(picture: Image, decoder: KeyframeDecoder, crf: int = 23) -> Frame:
    data, _ = encode_keyframe(picture, crf)
    return decoder.decode_bytes(data)


# -- evaluation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    sample: Sample
    found: frozenset[str]
    displacement: tuple[float, float, float] | None  # dx, dy (pixels), rotation (degrees)
    width: int  # of the camera's picture, in pixels

    @property
    def error(self) -> float | None:
        """Displacement error, in percent of the picture's width (``None`` if not measured)."""
        if self.sample.truth is None or self.displacement is None:
            return None
        (dx, dy, _), (tx, ty, _) = self.displacement, self.sample.truth
        return 100.0 * math.hypot(dx - tx, dy - ty) / self.width


def evaluate(scene_set: SceneSet, settings: Settings | None = None) -> list[Outcome]:
    """Learn the scene's reference from its learning pictures, then judge each sample."""
    s = settings or Settings(zones=scene_set.scene.zones)
    decoder = KeyframeDecoder("h264")
    monitor = CameraMonitor(s)
    for k, picture in enumerate(scene_set.learning):
        monitor.observe(through_codec(picture, decoder), at=2.0 * k)
    assert monitor.reference is not None, f"{scene_set.scene.name}: reference not learned"
    out = []
    for sample in scene_set.samples:
        frame = through_codec(sample.picture, decoder, sample.crf)
        j = judge(frame, monitor.reference, s)
        d = j.displacement
        shift = (d.dx, d.dy, d.rotation) if d else None
        out.append(Outcome(sample, verdict(j, s), shift, scene_set.scene.width))
    return out
