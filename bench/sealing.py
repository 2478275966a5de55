"""What sealing costs while recording: the SHA-256 taken as a segment is written, and the signed
chain entry at its end, against the same recording without them, in one run.

The recording is the benchmarks' 1080p25 clip (4 Mbit/s, 120 s), muxed packet by packet into a
fragmented MP4 exactly as the recorder does (``gateway.recorder.segment``'s muxer options,
through its ``FullWriter``), on the storage disk. Each repetition records it twice, in
alternating order:

- **sealed**: ``FullWriter`` as shipped (every byte written goes through the hash), plus one
  signed chain entry per 60 s of media (``Sealer.seal``, with its fsync);
- **baseline**: the same writer with the hash left out, and no chain entry.

The CPU time (user + system, this process) of each is divided by the media seconds recorded:
the difference is the share of one core sealing costs per camera of this bitrate.

Usage: python bench/sealing.py [--repeats 7] [--out DIR]
Writes sealing.json and sealing.md to --out (bench/results/ by default).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, make_clip

sys.path.insert(0, str(ROOT))
from gateway.integrity.keys import KeyRing
from gateway.integrity.seal import Sealer
from gateway.recorder.segment import _MUXER_OPTIONS, FullWriter

RESULTS = ROOT / "bench" / "results"
SEGMENT_SECONDS = 60.0


class UnhashedWriter(FullWriter):
    """The writer before sealing: the same loop, no hash."""

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            done += os.write(self.fileno(), view[done:])
        return done


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def record(clip: Path, out: Path, writer: type[FullWriter], sealer: Sealer | None) -> float:
    """CPU seconds to record ``clip`` into ``out``."""
    source = av.open(str(clip))
    packets = [p for p in source.demux(source.streams.video[0]) if p.dts is not None]
    stream_template = source.streams.video[0]
    media = float(packets[-1].dts * stream_template.time_base) if packets else 0.0
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    began = cpu()
    f = writer(fd)
    container = av.open(f, "w", format="mp4", options=_MUXER_OPTIONS)
    stream = container.add_stream_from_template(stream_template)
    next_seal = SEGMENT_SECONDS
    for packet in packets:
        packet.stream = stream
        container.mux(packet)
        seconds = float(packet.dts * stream_template.time_base)
        if sealer is not None and seconds >= next_seal:
            next_seal += SEGMENT_SECONDS
            sealer.seal(
                "bench",
                "bench/x.mp4",
                sha256=f.sha256 or "",
                size=f.hashed_bytes,
                start=0.0,
                end=seconds,
                frames=0,
                flags=(),
                clock_synced=None,
            )
    container.close()
    os.fdatasync(fd)
    spent = cpu() - began
    f.close()
    source.close()
    return spent / media


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    clip = make_clip("1080p", 120)
    bitrate = clip.stat().st_size * 8 / 120
    work = Path(tempfile.mkdtemp(prefix="sealing-", dir=ROOT / "bench" / ".cache"))
    keys = KeyRing(work / "keys")
    keys.ensure()
    sealer = Sealer(work / "seals", keys)
    runs: dict[str, list[float]] = {"sealed": [], "baseline": []}
    for n in range(args.repeats):
        order = ["sealed", "baseline"] if n % 2 == 0 else ["baseline", "sealed"]
        for name in order:
            out = work / f"{name}.mp4"
            if name == "sealed":
                runs[name].append(record(clip, out, FullWriter, sealer))
            else:
                runs[name].append(record(clip, out, UnhashedWriter, None))
            out.unlink()
    sealed, baseline = statistics.median(runs["sealed"]), statistics.median(runs["baseline"])
    result: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": platform.node(),
        "python": platform.python_version(),
        "clip": clip.name,
        "bitrate_mbit_s": round(bitrate / 1e6, 2),
        "repeats": args.repeats,
        "cpu_per_media_second": runs,
        "sealed_median": sealed,
        "baseline_median": baseline,
        "sealing_share_of_a_core": sealed - baseline,
        "sealing_share_per_4mbit_camera": (sealed - baseline) * 4e6 / bitrate,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sealing.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Sealing while recording",
        "",
        f"{result['when']} on {result['machine']}: {clip.name} ({result['bitrate_mbit_s']} "
        f"Mbit/s), {args.repeats} alternating repetitions, CPU per second of media (median).",
        "",
        "| | share of one core |",
        "|---|---|",
        f"| recording, sealed | {100 * sealed:.3f} % |",
        f"| recording, baseline (no hash, no chain) | {100 * baseline:.3f} % |",
        f"| sealing | {100 * (sealed - baseline):.3f} % "
        f"({100 * result['sealing_share_per_4mbit_camera']:.3f} % per 4 Mbit/s camera) |",
        "",
        "Reproduce: `.venv/bin/python bench/sealing.py --repeats 7`",
    ]
    (args.out / "sealing.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    for entry in work.rglob("*"):
        if entry.is_file():
            entry.unlink()


if __name__ == "__main__":
    main()
