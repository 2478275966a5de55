"""A real RTSP ingest for the tests, standing in for the supervision centre's media server.

The GStreamer RTSP server in RECORD mode: clients push with ANNOUNCE/RECORD over TCP, optionally
over TLS and with a password. Each push session is written to its own MPEG-TS file
``<out>/<path>-<n>.ts`` (paths' slashes become '_'), readable by ffprobe while it grows.
With ``--arrivals FILE``, one line per received video access unit: ``<CLOCK_MONOTONIC ns>
<path> <sha1 of its slice data>``, to measure latency against the camera. With ``--discard``,
nothing is written (a benchmark's centre, which only logs arrivals).

Usage: /usr/bin/python3 rtsp_receiver.py --port PORT --out DIR [--codec h264|h265]
       [--tls CERT KEY] [--auth USER:PASS] [--arrivals FILE] [--discard] [--path /site/cam ...]
Prints ``READY <port>`` once listening.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from digest import slice_digest  # noqa: E402
from gi.repository import Gio, Gst, GstRtsp, GstRtspServer  # noqa: E402
from gst_serve import allow, serve  # noqa: E402


class RecordMedia(GstRtspServer.RTSPMedia):
    """Keeps the sender's RTP timestamps (no clock slaving), as a media server relaying them."""

    def do_setup_rtpbin(self, rtpbin: Gst.Element) -> bool:
        rtpbin.set_property("buffer-mode", 0)  # RTP_JITTER_BUFFER_MODE_NONE
        return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--codec", default="h264", choices=("h264", "h265"))
    parser.add_argument("--path", action="append", default=[], help="mount path(s) accepted")
    parser.add_argument("--auth", help="USER:PASS required from pushers")
    parser.add_argument("--digest", action="store_true", help="ask for Digest, not Basic")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--arrivals", type=Path)
    parser.add_argument("--discard", action="store_true", help="write no files")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    arrivals = args.arrivals.open("a", buffering=1) if args.arrivals else None
    counter = [len(list(args.out.glob("*.ts")))]

    role = "pusher"
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, role)
    if args.auth:
        user, password = args.auth.split(":", 1)
        if args.digest:
            auth.add_digest(user, password, token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        else:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    else:
        auth.set_default_token(token)
    if args.tls:
        auth.set_tls_certificate(Gio.TlsCertificate.new_from_files(args.tls[0], args.tls[1]))
    server.set_auth(auth)

    depay = "rtph264depay" if args.codec == "h264" else "rtph265depay"
    parse = "h264parse" if args.codec == "h264" else "h265parse"
    caps = "video/x-h264" if args.codec == "h264" else "video/x-h265"
    output = (
        "fakesink sync=false async=false"
        if args.discard
        else f"{parse} ! mpegtsmux ! filesink name=sink sync=false"
    )
    launch = f"( {depay} name=depay0 ! {caps},stream-format=byte-stream,alignment=au ! {output} )"

    def on_configure(
        _factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia, path: str
    ) -> None:
        counter[0] += 1
        element = media.get_element()
        name = path.strip("/").replace("/", "_") or "root"
        location = str(args.out / f"{name}-{counter[0]}.ts")
        if not args.discard:
            element.get_by_name("sink").set_property("location", location)
        if arrivals is not None:
            pad = element.get_by_name("depay0").get_static_pad("src")

            def probe(_pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
                buffer = info.get_buffer()
                ok, mapped = buffer.map(Gst.MapFlags.READ)
                if ok:
                    data = bytes(mapped.data)
                    buffer.unmap(mapped)
                    digest = slice_digest(data)
                    if digest:
                        arrivals.write(f"{time.monotonic_ns()} {path} {digest}\n")
                return Gst.PadProbeReturn.OK

            pad.add_probe(Gst.PadProbeType.BUFFER, probe)

    mounts = server.get_mount_points()
    for path in args.path or ["/"]:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
        factory.set_media_gtype(RecordMedia)
        factory.set_launch(launch)
        factory.set_latency(0)
        allow(factory, role)
        factory.connect("media-configure", on_configure, path)
        mounts.add_factory(path, factory)

    serve(server, args.port)


if __name__ == "__main__":
    main()
