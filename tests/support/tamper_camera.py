"""A real RTSP camera whose picture can be tampered with while it streams: covered, defocused,
turned, or with its privacy mask gone. Run with the system Python (GStreamer).

Usage: /usr/bin/python3 tamper_camera.py --port PORT [--mount /cam] [--width 640] [--height 360]
       [--fps 10] [--gop 10] [--bitrate 1500] [--shift 15] [--mask X0,Y0,X1,Y1] [--seed 7]

Prints ``READY <port>`` on stdout once it listens. Then each line written to its stdin names a
mode, answered by ``MODE <name>`` on stdout as soon as a picture in that mode has been made
(within one frame period, whether or not a client is watching); an unknown name is answered by
``ERROR unknown mode ...``. EOF on stdin leaves the camera running; SIGTERM or SIGINT stops it.

- ``normal``: a corridor (ceiling panels, brick wall, doors, posters, cables, a tiled floor and
  pixel-level grain) with a flat grey (128) rectangle, the privacy mask, at ``--mask``
  (normalised, default x 0.70–0.90, y 0.15–0.45), and a person walking along the floor, always
  below the mask;
- ``black``: a covered lens, near black: 8 once decoded to RGB (luma 23, as H.264 is
  limited range: luma 16 is black), with ±2 levels of noise;
- ``blur``: the corridor through a defocused lens (a Gaussian of σ ≈ 6 px at 640 px wide), the
  mask painted over it afterwards as a camera's digital mask is;
- ``shift``: the camera turned, the scene moved left by ``--shift`` percent of the width (the
  corridor continues on the right), the mask moving with the scene;
- ``unmask``: the corridor with the mask gone, showing the window behind it.

The system Python here has no numpy, so the pictures are drawn with the standard library into
``bytearray``s (row slices, a box blur made of running sums): once per mode at start-up, in
about 0.1 s. Each frame is then a copy of its mode's picture with the person drawn on it,
pushed by a thread paced on the monotonic clock into an ``appsrc`` stamping it with the running
time (``do-timestamp``), as a live camera does. The mount is shared between clients. The
``appsrc`` holds at most 3 frames (dropping the oldest), so a client joining just after
``MODE`` could at worst get one old frame before the new mode's pictures; the encoder keeps
up (~2 % of a core in all), so the queue is normally empty.
"""

from __future__ import annotations

import argparse
import operator
import random
import sys
import threading
import time
from itertools import accumulate

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402
from gst_serve import serve  # noqa: E402

MODES = ("normal", "black", "blur", "shift", "unmask")
MASK_GREY = 128
BLACK_LUMA = 23
"""Luma of the covered picture: 8 in RGB, (23 − 16) × 255 / 219."""
GRAIN = 6
"""Amplitude, in grey levels, of the pixel-level grain added to the corridor."""
FLOOR = 0.62
"""Height, as a share of the picture's, where the wall ends: the person walks below it."""
BLUR_BOXES = (11, 13, 13)
"""Widths of the three box filters making the defocus: σ² = Σ (w² − 1) / 12 = 38, σ ≈ 6.2 px
(at 640 px wide; scaled with the width)."""


class Canvas:
    """A grey picture as a ``bytearray``, drawn on with row slices."""

    def __init__(self, width: int, height: int, value: int = 0) -> None:
        self.width, self.height = width, height
        self.px = bytearray([value]) * (width * height)

    def rect(self, x0: float, y0: float, x1: float, y1: float, value: int) -> None:
        """Fill ``[x0, x1) × [y0, y1)``, clipped to the picture."""
        left, right = max(0, round(x0)), min(self.width, round(x1))
        top, bottom = max(0, round(y0)), min(self.height, round(y1))
        if left >= right or top >= bottom:
            return
        run = bytes([max(0, min(255, value))]) * (right - left)
        for y in range(top, bottom):
            start = y * self.width + left
            self.px[start : start + right - left] = run

    def outline(self, x0: float, y0: float, x1: float, y1: float, value: int, t: int) -> None:
        self.rect(x0, y0, x1, y0 + t, value)
        self.rect(x0, y1 - t, x1, y1, value)
        self.rect(x0, y0, x0 + t, y1, value)
        self.rect(x1 - t, y0, x1, y1, value)

    def line(self, x0: float, y0: float, x1: float, y1: float, value: int, t: int = 2) -> None:
        steps = max(1, round(max(abs(x1 - x0), abs(y1 - y0))))
        for i in range(steps + 1):
            x, y = x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps
            self.rect(x, y, x + t, y + t, value)

    def window(self, x0: int, width: int) -> bytearray:
        """Columns ``[x0, x0 + width)`` of every row."""
        out = bytearray()
        for y in range(self.height):
            start = y * self.width + x0
            out += self.px[start : start + width]
        return out


def corridor(
    width: int, height: int, canvas_width: int, seed: int, clear: tuple[float, float]
) -> Canvas:
    """The scene, ``canvas_width`` wide (the view plus what a turn brings into it), drawn from a
    seeded generator so every run shows the same corridor. Detail sits at every scale the
    analysis looks at (the bricks, the floor tiles, the posters' lines) and is irregular (each
    brick and tile its own grey), so that neither the feature matching nor a phase correlation
    can mistake one part of the scene for another. No door stands in the columns ``clear``."""
    rng = random.Random(seed)
    c = Canvas(canvas_width, height, 150)
    u = width / 640  # drawing sizes are for 640 px wide
    ceiling, skirting, floor = 0.09 * height, FLOOR * height, (FLOOR + 0.025) * height
    # ceiling panels with lights
    x = 0.0
    while x < canvas_width:
        w = rng.randint(40, 60) * u
        c.rect(x, 0, x + w, ceiling, rng.randint(190, 225))
        if rng.random() < 0.5:
            c.rect(x + w * 0.25, ceiling * 0.3, x + w * 0.75, ceiling * 0.7, 250)
        c.rect(x + w - 2 * u, 0, x + w, ceiling, 90)
        x += w
    # brick wall
    brick_h, brick_w = 12 * u, 30 * u
    row, y = 0, ceiling
    while y < skirting:
        x = -brick_w * (row % 2) / 2
        while x < canvas_width:
            grey = rng.randint(105, 195)
            c.rect(x, y, x + brick_w, y + brick_h, grey)
            c.rect(x, y, x + brick_w, y + brick_h * 0.4, grey + 12)
            c.rect(x, y + brick_h - 2 * u, x + brick_w, y + brick_h, 70)  # mortar
            c.rect(x + brick_w - 2 * u, y, x + brick_w, y + brick_h, 70)
            x += brick_w
        y += brick_h
        row += 1
    c.rect(0, skirting, canvas_width, floor, 45)
    # tiled floor
    tile_h, y = 16 * u, floor
    while y < height:
        x = -rng.randint(0, 30) * u
        while x < canvas_width:
            w = rng.randint(28, 44) * u
            c.rect(x, y, x + w, y + tile_h, rng.randint(60, 190))
            c.rect(x + w - 2 * u, y, x + w, y + tile_h, 35)
            x += w
        c.rect(0, y + tile_h - 2 * u, canvas_width, y + tile_h, 35)
        y += tile_h
    # posters with lines of text
    for _ in range(round(canvas_width / 60)):
        pw, ph = rng.randint(18, 50) * u, rng.randint(20, 60) * u
        px, py = rng.uniform(0, canvas_width - pw), rng.uniform(ceiling + 4, skirting - ph - 4)
        c.rect(px, py, px + pw, py + ph, rng.choice((20, 40, 225, 240)))
        ink = 200 if c.px[round(py) * canvas_width + round(px)] < 128 else 30
        for ty in range(round(py + 4 * u), round(py + ph - 4 * u), max(2, round(5 * u))):
            tx = px + 3 * u
            while tx < px + pw - 6 * u:
                word = rng.randint(3, 9) * u
                c.rect(tx, ty, min(tx + word, px + pw - 3 * u), ty + 2 * u, ink)
                tx += word + 3 * u
    # doors, clear of the privacy mask's columns
    door_w = 62 * u
    slots = [
        x
        for x in range(0, round(canvas_width - door_w), round(door_w * 1.6))
        if x + door_w < clear[0] - 4 * u or x > clear[1] + 4 * u
    ]
    for dx in rng.sample(slots, k=min(len(slots), max(2, round(canvas_width / 230)))):
        top = ceiling + 0.12 * height
        c.rect(dx, top, dx + door_w, skirting, rng.randint(80, 140))
        c.outline(dx, top, dx + door_w, skirting, 35, max(2, round(5 * u)))
        for k in range(2):
            py0 = top + 10 * u + k * (skirting - top) / 2
            c.outline(
                dx + 10 * u,
                py0,
                dx + door_w - 10 * u,
                py0 + (skirting - top) / 2 - 20 * u,
                60,
                max(1, round(2 * u)),
            )
        c.rect(
            dx + door_w - 14 * u,
            (top + skirting) / 2,
            dx + door_w - 9 * u,
            (top + skirting) / 2 + 10 * u,
            235,
        )
    # cables and pipes
    for _ in range(round(canvas_width / 40)):
        x0, y0 = rng.uniform(0, canvas_width), rng.uniform(ceiling, skirting)
        c.line(
            x0,
            y0,
            x0 + rng.uniform(-120, 120) * u,
            y0 + rng.uniform(-40, 40) * u,
            rng.choice((25, 35, 240)),
            max(1, round(rng.choice((1, 2, 3)) * u)),
        )
    return c


def draw_window(c: Canvas, box: tuple[float, float, float, float], seed: int) -> None:
    """What the mask hides: a window onto a lit flat (curtains, a lamp, shelves of books)."""
    rng = random.Random(seed + 1)
    x0, y0, x1, y1 = box
    c.rect(x0, y0, x1, y1, 55)
    for x in range(round(x0), round(x1), 7):  # curtains
        c.rect(x, y0, x + 3, y0 + (y1 - y0) * 0.8, rng.randint(150, 210))
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    c.rect(mx - 10, my - 12, mx + 10, my + 4, 245)  # lamp
    c.rect(mx - 2, my + 4, mx + 2, y1 - 6, 30)
    for shelf in range(3):
        sy = y0 + 8 + shelf * (y1 - y0) / 3.5
        bx = x0 + 6
        while bx < x0 + (x1 - x0) * 0.35:
            bw = rng.randint(2, 5)
            c.rect(bx, sy, bx + bw, sy + 14, rng.randint(20, 235))
            bx += bw + 1
    c.outline(x0, y0, x1, y1, 235, 5)  # frame and mullions
    c.rect(mx - 2, y0, mx + 2, y1, 235)
    c.rect(x0, my - 2, x1, my + 2, 235)


def grain(px: bytearray, rng: random.Random, amplitude: int) -> bytearray:
    """``px`` with uniform noise of ± ``amplitude`` (values clamped first, so none overflows)."""
    lo, hi = amplitude, 255 - amplitude
    squeezed = px.translate(bytes(min(max(v, lo), hi) - lo for v in range(256)))
    noise = rng.randbytes(len(px)).translate(bytes(v % (2 * amplitude + 1) for v in range(256)))
    return bytearray(map(operator.add, squeezed, noise))


def box_rows(rows: list[list[int]], width: int) -> list[list[int]]:
    """Each row averaged over a window of ``width`` pixels (edges replicated)."""
    r = width // 2
    out = []
    for row in rows:
        padded = [row[0]] * r + row + [row[-1]] * r
        p = [0, *accumulate(padded)]
        out.append([(p[i + width] - p[i] + r) // width for i in range(len(row))])
    return out


def defocus(px: bytearray, width: int, height: int, scale: float) -> bytearray:
    """A Gaussian blur made of three box filters across, then three down."""
    rows = [list(px[y * width : (y + 1) * width]) for y in range(height)]
    boxes = [max(1, round(b * scale) | 1) for b in BLUR_BOXES]
    for b in boxes:
        rows = box_rows(rows, b)
    cols = [list(c) for c in zip(*rows, strict=True)]
    for b in boxes:
        cols = box_rows(cols, b)
    return bytearray(v for row in zip(*cols, strict=True) for v in row)


def paint(px: bytearray, width: int, box: tuple[float, float, float, float], value: int) -> None:
    x0, y0, x1, y1 = (round(v) for v in box)
    run = bytes([value]) * (x1 - x0)
    for y in range(y0, y1):
        px[y * width + x0 : y * width + x1] = run


class Pictures:
    """Every mode's picture, drawn once, and the person drawn on a copy for each frame."""

    def __init__(self, args: argparse.Namespace) -> None:
        w, h = args.width, args.height
        self.width, self.height = w, h
        shift = round(w * args.shift / 100)
        mx0, my0, mx1, my1 = args.mask
        mask = (mx0 * w, my0 * h, mx1 * w, my1 * h)
        scene = corridor(w, h, w + shift, args.seed, (mask[0], mask[2]))
        draw_window(scene, mask, args.seed)
        scene.px = grain(scene.px, random.Random(args.seed + 2), GRAIN)
        masked = Canvas(w + shift, h)
        masked.px = bytearray(scene.px)
        paint(masked.px, w + shift, mask, MASK_GREY)
        blurred = defocus(scene.window(0, w), w, h, w / 640)
        paint(blurred, w, mask, MASK_GREY)
        rng = random.Random(args.seed + 3)
        black = rng.randbytes(w * h).translate(bytes(BLACK_LUMA - 2 + v % 5 for v in range(256)))
        grey = {
            "normal": masked.window(0, w),
            "black": black,
            "blur": blurred,
            "shift": masked.window(shift, w),
            "unmask": scene.window(0, w),
        }
        chroma = bytes([128]) * (2 * ((w + 1) // 2) * ((h + 1) // 2))
        self.frames = {mode: bytes(y) + chroma for mode, y in grey.items()}
        self.walkers = {"normal", "shift", "unmask"}
        """Modes showing the person (a covered lens does not; a defocused one would show a
        blurred person, which a sharp sprite is not)."""
        u = w / 640
        self.person = [  # runs of (row, left, width, value) from the person's top left
            (round(y * u), round(x * u), round(pw * u), value)
            for y0, y1, x, pw, value in (
                (0, 14, 6, 12, 205),  # head
                (14, 16, 8, 8, 190),  # neck
                (16, 46, 0, 24, 50),  # coat
                (46, 80, 2, 20, 30),  # legs
            )
            for y in range(y0, y1)
        ]
        self.top = round(0.92 * h - 80 * u)  # on the floor: feet at 92 %, head at ~70 %
        self.step = max(1, round(7 * u))

    def frame(self, mode: str, n: int) -> bytes:
        base = self.frames[mode]
        if mode not in self.walkers:
            return base
        px = bytearray(base)
        w = self.width
        span = w + 60
        left = (n * self.step) % span - 30
        for dy, dx, pw, value in self.person:
            x0, x1 = max(0, left + dx), min(w, left + dx + pw)
            if x0 < x1:
                start = (self.top + dy) * w
                px[start + x0 : start + x1] = bytes([value]) * (x1 - x0)
        return bytes(px)


class Feeder:
    """Pushes a frame every period into the live media's ``appsrc`` (if a client watches) and
    applies the modes asked for on stdin, announcing each once a frame uses it."""

    def __init__(self, pictures: Pictures, fps: int) -> None:
        self.pictures = pictures
        self.period = 1.0 / fps
        self.duration = Gst.SECOND // fps
        self.mode = "normal"
        self.asked: list[str] = []
        self.src: Gst.Element | None = None
        self.lock = threading.Lock()

    def configure(self, _factory: object, media: GstRtspServer.RTSPMedia) -> None:
        src = media.get_element().get_by_name("src")
        media.connect("unprepared", self.unprepared, src)
        with self.lock:
            self.src = src

    def unprepared(self, _media: GstRtspServer.RTSPMedia, src: Gst.Element) -> None:
        with self.lock:
            if self.src is src:
                self.src = None

    def ask(self, line: str) -> None:
        name = line.strip()
        if not name:
            return
        if name not in MODES:
            say(f"ERROR unknown mode {name!r} (one of {', '.join(MODES)})")
            return
        with self.lock:
            self.asked.append(name)

    def tick(self, n: int) -> None:
        with self.lock:
            asked, self.asked = self.asked, []
            if asked:
                self.mode = asked[-1]
            src = self.src
        data = self.pictures.frame(self.mode, n)
        if src is not None:
            buffer = Gst.Buffer.new_wrapped(data)
            buffer.duration = self.duration
            src.emit("push-buffer", buffer)
        for name in asked:
            say(f"MODE {name}")

    def run(self) -> None:
        n, due = 0, time.monotonic()
        while True:
            due += self.period
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                due = time.monotonic()  # late (a loaded box): no burst to catch up
            self.tick(n)
            n += 1


_say_lock = threading.Lock()


def say(line: str) -> None:
    with _say_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def read_commands(feeder: Feeder) -> None:
    for line in sys.stdin:
        feeder.ask(line)
    # EOF: whoever drove the camera has gone; it keeps streaming until SIGTERM


def fraction_box(text: str) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in text.split(","))
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise argparse.ArgumentTypeError(f"mask {text!r} is not X0,Y0,X1,Y1 within [0, 1]")
    return x0, y0, x1, y1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", default="/cam")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--gop", type=int, default=10, help="frames between keyframes")
    parser.add_argument("--bitrate", type=int, default=1500, help="kbit/s")
    parser.add_argument("--shift", type=float, default=15.0, help="percent of the width")
    parser.add_argument("--mask", type=fraction_box, default=(0.70, 0.15, 0.90, 0.45))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.width % 2 or args.height % 2:
        parser.error("--width and --height must be even (I420)")
    if args.mask[3] > FLOOR:
        parser.error(f"--mask must end above the floor ({FLOOR} of the height), where people walk")

    Gst.init(None)
    feeder = Feeder(Pictures(args), args.fps)
    caps = f"video/x-raw,format=I420,width={args.width},height={args.height},framerate={args.fps}/1"
    launch = (
        f'appsrc name=src is-live=true do-timestamp=true format=time caps="{caps}"'
        " max-buffers=3 leaky-type=downstream"
        " ! x264enc tune=zerolatency speed-preset=ultrafast threads=1"
        f" bitrate={args.bitrate} key-int-max={args.gop}"
        " ! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=-1"
    )
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( {launch} )")
    factory.set_shared(True)
    factory.connect("media-configure", feeder.configure)
    server.get_mount_points().add_factory(args.mount, factory)

    threading.Thread(target=feeder.run, name="frames", daemon=True).start()

    def listen_to_stdin() -> bool:  # after READY: no answer can come before it
        threading.Thread(target=read_commands, args=(feeder,), name="stdin", daemon=True).start()
        return GLib.SOURCE_REMOVE

    GLib.idle_add(listen_to_stdin)
    serve(server, args.port)


if __name__ == "__main__":
    main()
