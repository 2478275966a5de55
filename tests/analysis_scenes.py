"""A labelled set of camera pictures for the analysis tests and the quality benchmark.

Scenes are real photographs bundled with scikit-image and synthetic corridors (perspective,
doors, textured walls, a window). A camera's view is a window cut from a larger canvas, so a
camera that is turned or rotated sees more of the same scene, never black borders. Each variant
of a view (a person walking by, a lighting ramp, a cover, a defocus, a move...) is encoded as
one H.264 keyframe with libx264 and decoded back through the analyser's own decoder, so the
analysis sees real compression artefacts.

The labelled samples built from these, and their evaluation, are in ``analysis_set.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from gateway.analysis import Zone

Image = NDArray[np.uint8]

PHOTOS = (
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "brick",
    "grass",
    "immunohistochemistry",
)
MARGIN = 1.5
"""Canvas size over the view's size: room for a 20 % turn or a 10° rotation."""


@dataclass(frozen=True)
class Scene:
    """A canvas and the camera's view of it (``width × height`` at the canvas centre)."""

    name: str
    canvas: Image  # RGB
    width: int
    height: int
    zones: tuple[Zone, ...] = ()

    def view(self, dx: float = 0.0, dy: float = 0.0, angle: float = 0.0) -> Image:
        """The picture once the camera is turned so that the scene moves by ``(dx, dy)`` pixels
        in the picture and rotates by ``angle`` degrees (counter-clockwise) about its centre."""
        ch, cw = self.canvas.shape[:2]
        centre = (self.width / 2, self.height / 2)
        rot = cv2.getRotationMatrix2D(centre, angle, 1.0)
        # canvas → picture: put the canvas centre at the picture centre, shift, then rotate
        shift = np.array(
            [[1, 0, self.width / 2 - cw / 2 + dx], [0, 1, self.height / 2 - ch / 2 + dy]]
        )
        matrix = rot @ np.vstack([shift, [0, 0, 1]])
        out = cv2.warpAffine(
            self.canvas,
            matrix,
            (self.width, self.height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT,
        )
        return np.ascontiguousarray(out, dtype=np.uint8)


def photo_scene(name: str, width: int = 704, height: int = 576) -> Scene:
    from skimage import data

    picture = getattr(data, name)()
    if picture.ndim == 2:
        picture = np.dstack([picture] * 3)
    picture = picture[:, :, :3].astype(np.uint8)
    cw, ch = int(width * MARGIN), int(height * MARGIN)
    scale = max(cw / picture.shape[1], ch / picture.shape[0])
    big = cv2.resize(
        picture,
        (math.ceil(picture.shape[1] * scale), math.ceil(picture.shape[0] * scale)),
        interpolation=cv2.INTER_CUBIC,
    )
    y0, x0 = (big.shape[0] - ch) // 2, (big.shape[1] - cw) // 2
    return Scene(name, np.ascontiguousarray(big[y0 : y0 + ch, x0 : x0 + cw]), width, height)


def corridor_scene(seed: int, width: int = 704, height: int = 576) -> Scene:
    """A corridor in perspective: floor tiles, textured walls, doors on both sides, an end
    window; privacy zones over two doors (private flats) as a camera would be set up."""
    rng = np.random.default_rng(seed)
    cw, ch = int(width * MARGIN), int(height * MARGIN)
    img = np.zeros((ch, cw, 3), np.uint8)
    vx, vy = cw * rng.uniform(0.42, 0.58), ch * rng.uniform(0.38, 0.5)
    ew, eh = cw * rng.uniform(0.16, 0.24), ch * rng.uniform(0.2, 0.3)
    ex0, ey0, ex1, ey1 = vx - ew / 2, vy - eh / 2, vx + ew / 2, vy + eh / 2
    wall = rng.integers(120, 210, 3)
    floor = rng.integers(60, 140, 3)
    ceil = rng.integers(180, 240, 3)
    corners = [(0, 0), (cw, 0), (cw, ch), (0, ch)]
    inner = [(ex0, ey0), (ex1, ey0), (ex1, ey1), (ex0, ey1)]
    faces = [(ceil, [0, 1]), (wall * 0.85, [1, 2]), (floor, [2, 3]), (wall, [3, 0])]
    for colour, (a, b) in faces:
        face = np.array([corners[a], corners[b], inner[b], inner[a]], np.int32)
        cv2.fillPoly(img, [face], [int(c) for c in colour])
    # floor tiles
    for k in range(1, 14):
        t = k / 14
        x = int(ex0 + (ex1 - ex0) * t)
        cv2.line(img, (int(cw * t), ch), (x, int(ey1)), (40, 40, 40), 2)
    for k in range(1, 9):
        t = (k / 9) ** 1.8
        y = int(ch + (ey1 - ch) * t)
        x0 = int(0 + (ex0 - 0) * t)
        x1 = int(cw + (ex1 - cw) * t)
        cv2.line(img, (x0, y), (x1, y), (40, 40, 40), 2)
    # end window
    cv2.rectangle(
        img,
        (int(ex0 + ew * 0.25), int(ey0 + eh * 0.15)),
        (int(ex0 + ew * 0.75), int(ey0 + eh * 0.6)),
        (235, 240, 250),
        -1,
    )
    cv2.line(img, (int(vx), int(ey0 + eh * 0.15)), (int(vx), int(ey0 + eh * 0.6)), (60, 60, 60), 3)
    # doors on the side walls, as trapezoids at depths t0..t1
    doors: list[NDArray[np.float64]] = []
    for side in (0, 1):
        for t0 in (0.3, 0.55):
            t1 = t0 + 0.16

            def at(t: float, yy: float, side: int = side) -> tuple[float, float]:
                x_edge = 0.0 if side == 0 else float(cw)
                x_in = ex0 if side == 0 else ex1
                x = x_edge + (x_in - x_edge) * t
                ytop = 0 + (ey0 - 0) * t
                ybot = ch + (ey1 - ch) * t
                return x, ytop + (ybot - ytop) * yy

            poly = np.array([at(t0, 0.25), at(t1, 0.28), at(t1, 1.0), at(t0, 1.0)])
            paint = [int(c) for c in rng.integers(50, 170, 3)]
            cv2.fillPoly(img, [poly.astype(np.int32)], paint)
            cv2.polylines(img, [poly.astype(np.int32)], True, (25, 25, 25), 4)
            hx, hy = at(t0 + (t1 - t0) * 0.8, 0.62)
            cv2.circle(img, (int(hx), int(hy)), 6, (220, 200, 60), -1)
            # a door number and a panel
            px, py = at(t0 + (t1 - t0) * 0.3, 0.4)
            cv2.putText(
                img,
                str(rng.integers(10, 99)),
                (int(px), int(py)),
                cv2.FONT_HERSHEY_SIMPLEX,
                1.2,
                (240, 240, 240),
                3,
            )
            doors.append(poly)
    # a notice board and a light
    bx, by = int(cw * rng.uniform(0.3, 0.4)), int(ch * 0.12)
    cv2.rectangle(img, (bx, by), (bx + 120, by + 80), (250, 250, 245), -1)
    for line in range(4):
        cv2.putText(
            img,
            "RESIDENCE" if line == 0 else "avis n." + str(line),
            (bx + 6, by + 18 + 18 * line),
            cv2.FONT_HERSHEY_PLAIN,
            1.0,
            (20, 20, 20),
            1,
        )
    cv2.ellipse(img, (int(vx), int(ch * 0.08)), (60, 14), 0, 0, 360, (255, 255, 230), -1)
    # texture over everything (roughcast, wood grain, dust)
    grain = cv2.GaussianBlur(rng.normal(0, 14, (ch, cw)).astype(np.float32), (0, 0), 1.2)
    img = np.clip(img.astype(np.float32) + grain[:, :, None], 0, 255).astype(np.uint8)
    scene = Scene(f"corridor{seed}", img, width, height)
    # zones over the two near doors, in the view's normalised coordinates
    zones: list[Zone] = []
    for door in (doors[0], doors[2]):
        pts = door - np.array([cw / 2 - width / 2, ch / 2 - height / 2])
        norm = [(float(np.clip(x / width, 0, 1)), float(np.clip(y / height, 0, 1))) for x, y in pts]
        if min(p[0] for p in norm) < 0.98 and max(p[0] for p in norm) > 0.02:
            zones.append(Zone(f"door{len(zones) + 1}", tuple(norm)))
    return Scene(scene.name, img, width, height, tuple(zones))


# -- variants -------------------------------------------------------------------------------


def mask(picture: Image, zones: tuple[Zone, ...], fill: int = 128) -> Image:
    """The picture as the camera sends it with its privacy masks: each zone a flat fill."""
    out = picture.copy()
    h, w = out.shape[:2]
    for zone in zones:
        pts = np.array([(x * w, y * h) for x, y in zone.points], np.int32)
        cv2.fillPoly(out, [pts], (fill, fill, fill))
    return out


def people(picture: Image, rng: np.random.Generator, count: int) -> Image:
    """People-like figures walking through (a head and a body, in clothes of one colour)."""
    out = picture.copy()
    h, w = out.shape[:2]
    for _ in range(count):
        size = rng.uniform(0.25, 0.5) * h
        x, y = rng.uniform(0.1, 0.9) * w, rng.uniform(0.55, 0.95) * h
        body = [int(c) for c in rng.integers(0, 255, 3)]
        cv2.ellipse(
            out,
            (int(x), int(y - size * 0.45)),
            (int(size * 0.17), int(size * 0.35)),
            0,
            0,
            360,
            body,
            -1,
        )
        cv2.circle(out, (int(x), int(y - size * 0.9)), int(size * 0.09), (170, 130, 110), -1)
        cv2.rectangle(
            out,
            (int(x - size * 0.1), int(y - size * 0.2)),
            (int(x + size * 0.1), int(y)),
            [c // 2 for c in body],
            -1,
        )
    return out


def lighting(picture: Image, gain_left: float, gain_right: float) -> Image:
    ramp = np.linspace(gain_left, gain_right, picture.shape[1], dtype=np.float32)
    lit = picture.astype(np.float32) * ramp[None, :, None]
    return np.asarray(np.clip(lit, 0, 255), np.uint8)


def noise(picture: Image, rng: np.random.Generator, sigma: float) -> Image:
    return np.clip(picture + rng.normal(0, sigma, picture.shape), 0, 255).astype(np.uint8)


def infrared(picture: Image, gain: float = 1.0, contrast: float = 1.35) -> Image:
    """The colour → infrared switch: grey, contrast raised about the mean, scaled by ``gain``."""
    grey = cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grey = (grey - grey.mean()) * contrast + grey.mean()
    grey = np.clip(grey * gain, 0, 255).astype(np.uint8)
    return np.dstack([grey] * 3)


def night(picture: Image, rng: np.random.Generator) -> Image:
    """A dark infrared scene with sensor noise: dark but structured, not covered."""
    return noise(infrared(picture, gain=0.3, contrast=1.2), rng, 3.0)


def uniform(
    shape: tuple[int, ...], rng: np.random.Generator, level: int, sigma: float = 2.0
) -> Image:
    colour = np.array([level, level, level]) + rng.integers(-20, 20, 3)
    flat = np.broadcast_to(colour.astype(np.float32), shape)
    return np.clip(flat + rng.normal(0, sigma, shape), 0, 255).astype(np.uint8)


def partial_cover(picture: Image, rng: np.random.Generator, share: float, side: int) -> Image:
    """A cloth or hand over ``share`` of the picture, from one side; its edge slightly blurred."""
    h, w = picture.shape[:2]
    cover = uniform(picture.shape, rng, int(rng.integers(20, 120)), 3.0)
    weight = np.zeros((h, w), np.float32)
    if side == 0:
        weight[:, : int(w * share)] = 1
    elif side == 1:
        weight[:, w - int(w * share) :] = 1
    elif side == 2:
        weight[h - int(h * share) :, :] = 1
    else:
        weight[: int(h * share), :] = 1
    soft = np.asarray(cv2.GaussianBlur(weight, (0, 0), 4), np.float32)[:, :, None]
    return (picture * (1 - soft) + cover * soft).astype(np.uint8)


def sprayed(picture: Image, rng: np.random.Generator) -> Image:
    """Paint sprayed on the dome: the scene smeared beyond recognition under a tinted film."""
    w = picture.shape[1]
    smear = cv2.GaussianBlur(picture, (0, 0), w * rng.uniform(0.04, 0.07))
    tint = np.array(rng.integers(0, 255, 3), np.float32)
    alpha = rng.uniform(0.55, 0.8)
    out = smear.astype(np.float32) * (1 - alpha) + tint * alpha
    return noise(out.astype(np.uint8), rng, 1.5)


def defocus(picture: Image, radius: float) -> Image:
    """Out of focus: a disc blur of ``radius`` pixels (a lens's blur is a disc, not a Gaussian)."""
    r = max(1, round(radius))
    kernel = np.zeros((2 * r + 1, 2 * r + 1), np.float32)
    cv2.circle(kernel, (r, r), r, 1.0, -1)
    return np.asarray(cv2.filter2D(picture, -1, kernel / kernel.sum()), np.uint8)


def scenes(corridors: int, photos: tuple[str, ...] = PHOTOS, hd: int = 0) -> Iterator[Scene]:
    for name in photos:
        yield photo_scene(name)
    for seed in range(corridors):
        yield corridor_scene(seed)
    for seed in range(hd):
        yield corridor_scene(100 + seed, 1280, 720)
