"""A light RTSP ingest for the benchmark: accepts pushes (ANNOUNCE/SETUP/RECORD, RTP interleaved
over TCP) on one port and logs each H.264 picture as it arrives, and nothing else.

The GStreamer RTSP server, which the tests use as the centre, spends about 1.3 % of a core per
1080p camera just receiving; at 64 cameras that alone is most of a core of a 2-core box, taken
from the system being measured. This one reads the interleaved stream in large chunks on one
thread and only looks at RTP headers and the first slice of each picture (about 0.1 % per camera).

Arrivals: one line per picture, ``<CLOCK_MONOTONIC ns> <path> <identity>``, written when the
packet with the marker bit (the end of the picture) arrives; the identity is the first slice's
hash (tests/support/digest.py), so it matches what the cameras sent.

Usage: python bench/centre.py --port PORT --arrivals FILE
Prints ``READY <port>`` once listening; SIGTERM flushes the log and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import selectors
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import urlsplit

_READ = 1 << 18
_H264_FU_A = 28
_SLICES = (1, 5)


@dataclass
class _Picture:
    """The picture being received on one video channel."""

    timestamp: int | None = None
    digest: str = ""
    first_slice: Any = None
    """sha1 being fed with the fragments of the picture's first slice, while they arrive."""


@dataclass
class _Client:
    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)
    path: str = ""
    controls: dict[str, str] = field(default_factory=dict)
    """SDP ``a=control`` value -> media kind, from ANNOUNCE."""
    kinds: list[str] = field(default_factory=list)
    """Media kinds in SDP order, for SETUPs whose URL names no known control."""
    setups: int = 0
    video: dict[int, _Picture] = field(default_factory=dict)
    """Interleaved RTP channel -> the picture in progress, for video channels."""
    session: str = ""


class Centre:
    def __init__(self, port: int, arrivals: IO[str]) -> None:
        self.arrivals = arrivals
        self.selector = selectors.DefaultSelector()
        self.listener = socket.create_server(("127.0.0.1", port), backlog=256)
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.sessions = 0

    def serve(self, running: list[bool]) -> None:
        last_flush = time.monotonic()
        while running[0]:
            for key, _ in self.selector.select(0.5):
                if key.fileobj is self.listener:
                    self._accept()
                else:
                    self._read(key.data)
            now = time.monotonic()
            if now - last_flush >= 1.0:
                self.arrivals.flush()
                last_flush = now
        self.arrivals.flush()

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, _Client(sock))

    def _close(self, client: _Client) -> None:
        self.selector.unregister(client.sock)
        client.sock.close()

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(_READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(client)
            return
        client.buffer += data
        consumed = self._parse(client)
        if consumed:
            del client.buffer[:consumed]

    def _parse(self, client: _Client) -> int:
        """Handle every complete message in the buffer; the number of bytes consumed."""
        buf = client.buffer
        pos, end = 0, len(buf)
        while pos < end:
            if buf[pos] == 0x24:  # '$': an interleaved frame
                if end - pos < 4:
                    break
                channel, size = buf[pos + 1], (buf[pos + 2] << 8) | buf[pos + 3]
                if end - pos < 4 + size:
                    break
                picture = client.video.get(channel)
                if picture is not None:
                    self._rtp(client, picture, memoryview(buf)[pos + 4 : pos + 4 + size])
                pos += 4 + size
                continue
            head_end = buf.find(b"\r\n\r\n", pos)
            if head_end < 0:
                break
            head = bytes(buf[pos:head_end]).decode("utf-8", "replace")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if end < head_end + 4 + length:
                break
            body = bytes(buf[head_end + 4 : head_end + 4 + length]).decode("utf-8", "replace")
            self._request(client, head, body)
            pos = head_end + 4 + length
        return pos

    def _rtp(self, client: _Client, picture: _Picture, packet: memoryview) -> None:
        if len(packet) < 13:
            return
        first, second = packet[0], packet[1]
        timestamp = struct.unpack_from("!I", packet, 4)[0]
        offset = 12 + 4 * (first & 0x0F)
        if first & 0x10:  # header extension
            offset += 4 + 4 * struct.unpack_from("!H", packet, offset + 2)[0]
        if timestamp != picture.timestamp:
            picture.timestamp, picture.digest, picture.first_slice = timestamp, "", None
        payload = packet[offset:]
        if len(payload) >= 2:
            kind = payload[0] & 0x1F
            if kind in _SLICES and payload[1] & 0x80 and not picture.digest:
                picture.digest = hashlib.sha1(payload, usedforsecurity=False).hexdigest()
            elif kind == _H264_FU_A and len(payload) >= 3:
                fu = payload[1]
                nal_kind = fu & 0x1F
                if fu & 0x80 and nal_kind in _SLICES and payload[2] & 0x80 and not picture.digest:
                    picture.first_slice = hashlib.sha1(
                        bytes(((payload[0] & 0xE0) | nal_kind,)), usedforsecurity=False
                    )
                if picture.first_slice is not None:
                    picture.first_slice.update(payload[2:])
                    if fu & 0x40:
                        picture.digest = picture.first_slice.hexdigest()
                        picture.first_slice = None
        if second & 0x80 and picture.digest:  # marker: the picture is complete
            self.arrivals.write(f"{time.monotonic_ns()} {client.path} {picture.digest}\n")
            picture.digest = ""

    def _request(self, client: _Client, head: str, body: str) -> None:
        request_line, *lines = head.split("\r\n")
        method, url, *_ = [*request_line.split(" "), "", ""]
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        extra = ""
        if method == "OPTIONS":
            extra = "Public: OPTIONS, ANNOUNCE, SETUP, RECORD, TEARDOWN, GET_PARAMETER\r\n"
        elif method == "ANNOUNCE":
            client.path = urlsplit(url).path
            kind = ""
            for line in body.splitlines():
                if line.startswith("m="):
                    kind = line[2:].split(" ", 1)[0]
                    client.kinds.append(kind)
                elif line.startswith("a=control:") and kind:
                    client.controls[line[len("a=control:") :].strip()] = kind
        elif method == "SETUP":
            transport = headers.get("transport", "")
            channel = None
            for part in transport.split(";"):
                if part.startswith("interleaved="):
                    channel = int(part.split("=", 1)[1].split("-", 1)[0])
            if channel is None:
                self._reply(client, headers, "461 Unsupported Transport", "")
                return
            control = next((c for c in client.controls if url.endswith(c)), None)
            if control is not None:
                kind = client.controls[control]
            else:
                kind = client.kinds[client.setups] if client.setups < len(client.kinds) else ""
            client.setups += 1
            if kind == "video":
                client.video[channel] = _Picture()
            if not client.session:
                self.sessions += 1
                client.session = f"{self.sessions:08d}"
            extra = f"Transport: {transport}\r\n"
        self._reply(client, headers, "200 OK", extra)
        if method == "TEARDOWN":
            self._close(client)

    def _reply(self, client: _Client, headers: dict[str, str], status: str, extra: str) -> None:
        session = f"Session: {client.session};timeout=60\r\n" if client.session else ""
        reply = f"RTSP/1.0 {status}\r\nCSeq: {headers.get('cseq', '0')}\r\n{session}{extra}\r\n"
        with contextlib.suppress(OSError):  # a client gone meanwhile is closed on its next read
            client.sock.sendall(reply.encode())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--arrivals", required=True)
    args = parser.parse_args()
    running = [True]

    def stop(_signum: int, _frame: object) -> None:
        running[0] = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with open(args.arrivals, "a", buffering=1 << 16) as arrivals:
        centre = Centre(args.port, arrivals)
        print(f"READY {args.port}", flush=True)
        centre.serve(running)
    return 0


if __name__ == "__main__":
    sys.exit(main())
