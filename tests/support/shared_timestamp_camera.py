"""A test camera that gives several distinct pictures one RTP timestamp, as a signing camera
was seen to do at the start of its stream (six P pictures stamped alike after the first
keyframe).

Usage: python shared_timestamp_camera.py --port PORT --clip FILE.h264 [--first K] [--shared N]
       [--path /stream] [--fps FPS] [--packet-size BYTES] [--address 127.0.0.1]

The RTSP side is the hostile camera's (``hostile_camera.py`` next to this file): the same
handshake, SDP (the clip's SPS and PPS in ``sprop-parameter-sets``) and RTP packetiser (single
NAL units, FU-A above ``--packet-size``, the marker bit on each picture's last packet). After
PLAY it sends the clip once, one picture per frame interval, every NAL unit exactly as the clip
holds it, and then ends the session (closes the connection). Picture ``k`` carries the RTP
timestamp of ``k / fps`` seconds, except pictures ``K`` to ``K + N - 1`` (default 1 to 6), which
all carry picture ``K``'s. Prints ``READY <port>`` once it listens, logs on stderr (the last line
of a session says how many pictures were sent) and exits within a fraction of a second of
SIGTERM or SIGINT. Runs with the system ``/usr/bin/python3`` and with the venv's alike.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hostile_camera as hc

MODE = "shared-timestamp"


def shared_stamps(count: int, first: int, shared: int) -> list[int]:
    """The frame index whose time each of ``count`` pictures is stamped with."""
    return [first if first <= k < first + shared else k for k in range(count)]


def send_shared(client: hc.Client) -> None:
    options = client.options
    assert isinstance(options, SharedOptions)
    fps = options.fps or client.clip.fps
    units = client.clip.units
    stamps = shared_stamps(len(units), options.first, options.shared)
    started = time.monotonic()
    for index, (unit, stamp) in enumerate(zip(units, stamps, strict=True)):
        delay = started + index / fps - time.monotonic()
        if delay > 0 and client.stop.wait(delay):
            return
        client.send(client.rtp.access_unit(unit.nals, client.rtp.rtptime(stamp / fps)))
    hc.log(f"{client.peer}: sent {len(units)} pictures; ending the session")


@dataclass
class SharedOptions(hc.Options):
    first: int = 1
    """The first picture of the run stamped alike."""
    shared: int = 6
    """How many pictures the run holds."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clip", required=True, help="Annex-B H.264 elementary stream (.h264)")
    parser.add_argument("--first", type=int, default=1, help="first picture of the shared run")
    parser.add_argument("--shared", type=int, default=6, help="pictures stamped alike")
    parser.add_argument("--path", default="/stream")
    parser.add_argument("--fps", type=float, default=0.0, help="default: the clip's, or 25")
    parser.add_argument("--packet-size", type=int, default=1400, help="RTP payload bytes")
    parser.add_argument("--address", default="127.0.0.1")
    args = parser.parse_args()
    clip = hc.Clip.load(args.clip)
    if not 0 <= args.first < args.first + args.shared <= len(clip.units):
        parser.error(f"--first and --shared must lie within the clip's {len(clip.units)} pictures")
    options = SharedOptions(
        MODE, 0.0, args.path, args.fps, args.packet_size, 0.0, args.first, args.shared
    )
    hc.SENDERS[MODE] = send_shared
    try:
        server = hc.Server(options, clip, args.address, args.port)
    except OSError as exc:
        raise SystemExit(f"cannot listen on {args.address}:{args.port}: {exc.strerror}") from None

    def stop(_signum: int, _frame: FrameType | None) -> None:
        server.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    hc.log(
        f"{len(clip.units)} pictures at {args.fps or clip.fps:g} fps, pictures {args.first} to "
        f"{args.first + args.shared - 1} share one timestamp, path {args.path}"
    )
    print(f"READY {args.port}", flush=True)
    server.serve()
    hc.log("stopped")


if __name__ == "__main__":
    main()
