"""A real RTSP camera for the tests: the GStreamer RTSP server, run with the system Python.

Usage: /usr/bin/python3 rtsp_camera.py --port PORT [--tls CERT KEY] [--auth USER:PASS]
       [--departures FILE] [--keyframe-departures FILE]
       --mount /path[:codec=h264][:width=640][:height=360][:fps=25][:gop=25][:audio=aac|pcma|pcmu]
       [:bitrate=800][:pattern=ball|snow|...][:clip=FILE][:shared=1]

Prints ``READY <port>`` on stdout once it listens. Each mount is shared between clients, as on a
real camera: a client joining late starts mid-GOP and has to wait for the next keyframe.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TextIO

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from digest import avcc_digest, slice_digest  # noqa: E402
from gi.repository import Gio, Gst, GstRtspServer  # noqa: E402
from gst_serve import allow, serve  # noqa: E402


def video_branch(opts: dict[str, str]) -> str:
    codec = opts.get("codec", "h264")
    width, height = opts.get("width", "640"), opts.get("height", "360")
    fps, gop = opts.get("fps", "25"), opts.get("gop", "25")
    bitrate = opts.get("bitrate", "800")  # kbit/s
    caps = f"video/x-raw,width={width},height={height},framerate={fps}/1"
    pattern = opts.get("pattern", "ball")  # "snow" does not compress: the bitrate is reached
    src = f"videotestsrc is-live=true pattern={pattern} ! {caps} ! timeoverlay ! videoconvert"
    if codec == "h264":
        enc = (
            "x264enc tune=zerolatency speed-preset=ultrafast threads=1"
            f" bitrate={bitrate} key-int-max={gop}"
            " ! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=-1"
        )
    elif codec == "h265":
        enc = (
            f"x265enc tune=zerolatency speed-preset=ultrafast bitrate={bitrate} key-int-max={gop}"
            " ! rtph265pay name=pay0 pt=96 config-interval=-1"
        )
    else:
        raise SystemExit(f"unknown codec {codec!r}")
    return f"{src} ! {enc}"


def clip_branch(path: str, keyframes: bool) -> str:
    """Replays an MP4 clip as it is stored (length-prefixed access units; the payloader takes
    them without a parser). With ``keyframes``, a side branch holds only the keyframes, for
    :func:`log_departures`."""
    side = (
        "t. ! identity drop-buffer-flags=delta-unit ! queue"
        " ! fakesink name=keys sync=false async=false "
        if keyframes
        else ""
    )
    return (
        f"filesrc location={path} ! qtdemux ! tee name=t {side}"
        "t. ! rtph264pay name=pay0 pt=96 config-interval=-1"
    )


def audio_branch(kind: str) -> str:
    src = "audiotestsrc is-live=true wave=sine freq=440 volume=0.2"
    if kind == "aac":
        return (
            f"{src} ! audio/x-raw,rate=16000,channels=1 ! voaacenc bitrate=32000"
            " ! rtpmp4gpay name=pay1 pt=97"
        )
    if kind == "pcma":
        return f"{src} ! audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay1"
    if kind == "pcmu":
        return f"{src} ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay1"
    raise SystemExit(f"unknown audio {kind!r}")


def log_departures(
    _factory: GstRtspServer.RTSPMediaFactory,
    media: GstRtspServer.RTSPMedia,
    out: TextIO,
    path: str,
    identity: Callable[[bytes], str],
    element: str,
) -> None:
    """Log each access unit reaching ``element``'s sink pad (for latency measurements): the
    payloader, for every picture, or the ``keys`` branch of a clip, for keyframes only. A Python
    probe on every picture costs the camera more than the gateway spends on it; a clip is
    replayed in real time, so the other pictures' departures follow from their timestamps."""

    def probe(_pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        buffer = info.get_buffer()
        digest = identity(buffer.extract_dup(0, buffer.get_size()))
        if digest:
            out.write(f"{time.monotonic_ns()} {path} {digest}\n")
            out.flush()
        return Gst.PadProbeReturn.OK

    pad = media.get_element().get_by_name(element).get_static_pad("sink")
    pad.add_probe(Gst.PadProbeType.BUFFER, probe)


def parse_mount(spec: str) -> tuple[str, dict[str, str]]:
    path, *rest = spec.split(":")
    opts = dict(item.split("=", 1) for item in rest)
    return path, opts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", action="append", required=True)
    parser.add_argument("--auth", help="USER:PASS required from clients")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve RTSPS")
    parser.add_argument(
        "--departures", help="log '<CLOCK_MONOTONIC ns> <mount> <slice sha1>' per access unit sent"
    )
    parser.add_argument(
        "--keyframe-departures", help="the same for the keyframes of clip mounts only (cheap)"
    )
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()

    auth = None
    if args.auth or args.tls:
        auth = GstRtspServer.RTSPAuth()
        if args.tls:
            cert = Gio.TlsCertificate.new_from_files(args.tls[0], args.tls[1])
            auth.set_tls_certificate(cert)
        if args.auth:
            user, password = args.auth.split(":", 1)
            token = GstRtspServer.RTSPToken()
            token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        else:
            token = GstRtspServer.RTSPToken()
            token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "anonymous")
            auth.set_default_token(token)
        server.set_auth(auth)

    for spec in args.mount:
        path, opts = parse_mount(spec)
        keyframes = bool(args.keyframe_departures) and "clip" in opts
        launch = clip_branch(opts["clip"], keyframes) if "clip" in opts else video_branch(opts)
        if "audio" in opts:
            launch = f"{launch} {audio_branch(opts['audio'])}"
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(f"( {launch} )")
        factory.set_shared(opts.get("shared", "1") == "1")
        if args.departures:
            departures = open(args.departures, "a")  # noqa: SIM115 - open for the server's life
            identity = avcc_digest if "clip" in opts else slice_digest  # clips stay length-prefixed
            factory.connect("media-configure", log_departures, departures, path, identity, "pay0")
        if keyframes:
            keys = open(args.keyframe_departures, "a")  # noqa: SIM115 - open for the server's life
            factory.connect("media-configure", log_departures, keys, path, avcc_digest, "keys")
        if auth is not None:
            role = "user" if args.auth else "anonymous"
            allow(factory, role)
        mounts.add_factory(path, factory)

    serve(server, args.port)


if __name__ == "__main__":
    main()
