"""The whole export, as an officer gets it, against ffmpeg on the same hour; and its verification.

The hour of bench/export.py (60 segments of 60 s, 1080p25 4 Mbit/s) is laid out as a storage
root (hard links, named and indexed as the recorder does, each sealed in its camera's chain),
then each repetition runs, in alternating order:

- **package**: ``gateway.evidence.export.run_export``, everything the ``export`` command does:
  the temporary hold, each source re-hashed against its seal, the clip (stream copy,
  ``+faststart``, wall-clock track, fsync), the output's hash, manifest, signatures, VERIFY.txt,
  the journal entry, the rename, the lasting hold;
- **ffmpeg**: ``ffmpeg -f concat -safe 0 -i list.txt -c copy -movflags +faststart out.mp4``
  alone, and with what it would need at the least to be evidence: an fsync of its output and
  its sha256.

Then ``verify_package`` on the package (signatures, every file's hash, every source against its
seal), the cost for the officer's machine or the box.

Usage: python bench/export_package.py [--minutes 60] [--repeats 5] [--out DIR]
Writes export_package.json and export_package.md to --out (bench/results/ by default).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export as clipbench
from common import CACHE, ROOT

sys.path.insert(0, str(ROOT))
from gateway.config.model import Config
from gateway.evidence.box import Integrity
from gateway.evidence.export import ExportRequest, run_export
from gateway.evidence.verify import verify_package
from gateway.storage.index import Index
from gateway.storage.naming import segment_path
from gateway.storage.record import Segment

RESULTS = ROOT / "bench" / "results"
CAMERA = "hall"


def storage(minutes: int, root: Path) -> tuple[Config, Index, Integrity]:
    sources = clipbench.segments(minutes)
    clipbench.warm(sources)
    config = Config.model_validate(
        {"site_id": "bench", "storage": {"path": str(root), "quota": "100GiB"}}
    )
    index = Index(root / "index.sqlite3")
    integrity = Integrity.of(config)
    integrity.keys.ensure()
    rows = []
    for source in sources:
        path = segment_path(root, CAMERA, source.start).with_suffix("")  # final name
        path = path.with_name(path.name.removesuffix(".part"))
        path.parent.mkdir(parents=True, exist_ok=True)
        os.link(source.path, path)
        rel = str(path.relative_to(root))
        sha, size = clipbench_sha(path)
        seq = integrity.sealer.seal(
            CAMERA,
            rel,
            sha256=sha,
            size=size,
            start=source.start,
            end=source.start + clipbench.SEGMENT_SECONDS,
            frames=1500,
            flags=(),
            clock_synced=True,
        )
        rows.append(
            Segment(
                rel,
                CAMERA,
                source.start,
                source.start + clipbench.SEGMENT_SECONDS,
                size,
                1500,
                "h264",
                1920,
                1080,
                False,
                sha256=sha,
                seal_seq=seq,
            )
        )
    index.add_many(rows)
    return config, index, integrity


def clipbench_sha(path: Path) -> tuple[str, int]:
    from gateway.integrity.seal import hash_file

    return hash_file(path)


def run_package(
    config: Config, index: Index, integrity: Integrity, out: Path, start: float, end: float
) -> dict[str, float]:
    request = ExportRequest(
        cameras=(CAMERA,),
        start=start,
        end=end,
        output=out,
        operator="bench",
        reason="bench",
        case=None,
    )
    cpu, began = clipbench.cpu_self(), time.perf_counter()
    run_export(
        request,
        config=config,
        index=index,
        integrity=integrity,
        tz=config.zone,
        requested_via="bench",
    )
    return {"wall_s": time.perf_counter() - began, "cpu_s": clipbench.cpu_self() - cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    work = CACHE / "export-package"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    runs: dict[str, list[dict[str, float]]] = {"package": [], "ffmpeg": [], "verify": []}
    try:
        config, index, integrity = storage(args.minutes, work / "rec")
        start, end = clipbench.T0, clipbench.T0 + args.minutes * clipbench.SEGMENT_SECONDS
        listing = work / "list.txt"
        listing.write_text(
            "".join(f"file '{work / 'rec' / s.path}'\n" for s in index.segments(camera=CAMERA))
        )
        for i in range(args.repeats):
            order = ["package", "ffmpeg"] if i % 2 == 0 else ["ffmpeg", "package"]
            for system in order:
                os.sync()
                if system == "package":
                    out = work / f"package-{i}"
                    runs["package"].append(run_package(config, index, integrity, out, start, end))
                    cpu, began = clipbench.cpu_self(), time.perf_counter()
                    report = verify_package(
                        out, box_keys=integrity.keys.public_keys(), sealer=integrity.sealer
                    )
                    assert report.ok, report.as_dict()["failed"]
                    runs["verify"].append(
                        {"wall_s": time.perf_counter() - began, "cpu_s": clipbench.cpu_self() - cpu}
                    )
                    shutil.rmtree(out)
                    for hold in integrity.holds.holds():
                        integrity.holds.release(hold.id)
                else:
                    out = work / "ffmpeg.mp4"
                    result = clipbench.run_ffmpeg(listing, out)
                    result["sha256_s"] = clipbench.sha256_file(out)["wall_s"]
                    result["evidence_s"] = result["wall_with_fsync_s"] + result["sha256_s"]
                    runs["ffmpeg"].append(result)
                    out.unlink()
                print(system, json.dumps(runs[system][-1]), flush=True)
        index.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def med(system: str, key: str) -> float:
        return round(statistics.median(r[key] for r in runs[system]), 3)

    pairs = list(zip(runs["package"], runs["ffmpeg"], strict=True))
    results: dict[str, Any] = {
        "source": f"{args.minutes} min of one 1080p25 4 Mbit/s camera, 60 s segments",
        "repeats": args.repeats,
        "package_wall_s": med("package", "wall_s"),
        "package_cpu_s": med("package", "cpu_s"),
        "ffmpeg_wall_s": med("ffmpeg", "wall_s"),
        "ffmpeg_with_fsync_and_sha256_s": med("ffmpeg", "evidence_s"),
        "ratio_to_ffmpeg": round(statistics.median(p["wall_s"] / f["wall_s"] for p, f in pairs), 2),
        "ratio_to_ffmpeg_fsync_sha256": round(
            statistics.median(p["wall_s"] / f["evidence_s"] for p, f in pairs), 2
        ),
        "verify_wall_s": med("verify", "wall_s"),
        "verify_cpu_s": med("verify", "cpu_s"),
        "runs": runs,
        "command": f".venv/bin/python bench/export_package.py --minutes {args.minutes} "
        f"--repeats {args.repeats}",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "export_package.json").write_text(json.dumps(results, indent=2) + "\n")
    page = (
        f"# Whole export of {results['source']}\n\n"
        f"{args.repeats} alternating repetitions (median), sources in the page cache.\n\n"
        "| | wall s |\n| --- | ---: |\n"
        f"| `export` (package: hold, sources re-hashed, clip, hashes, signatures, journal) "
        f"| {results['package_wall_s']:.2f} |\n"
        f"| ffmpeg concat -c copy +faststart | {results['ffmpeg_wall_s']:.2f} |\n"
        f"| the same + fsync + sha256 of its output | "
        f"{results['ffmpeg_with_fsync_and_sha256_s']:.2f} |\n"
        f"| `verify` of the package, on the box | {results['verify_wall_s']:.2f} |\n\n"
        f"Ratio export / ffmpeg: **{results['ratio_to_ffmpeg']}**; against ffmpeg + fsync + "
        f"sha256: **{results['ratio_to_ffmpeg_fsync_sha256']}**.\n\n"
        f"Reproduce: `{results['command']}`\n"
    )
    (args.out / "export_package.md").write_text(page)
    print(page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
