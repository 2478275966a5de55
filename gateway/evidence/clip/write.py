"""Writing clips: :func:`write_clip` for one run of sources, :func:`write_clips` for sources
that may hold several (one clip per run)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, tzinfo
from pathlib import Path

from gateway.evidence.clip.model import Clip, ClipSource
from gateway.evidence.clip.remux import copy_opened, copy_source
from gateway.evidence.clip.sources import layout_of, open_source, prepare
from gateway.evidence.clip.writer import Writer

__all__ = ["write_clip", "write_clips"]


def write_clip(
    sources: Sequence[ClipSource],
    start: float,
    end: float,
    output: Path,
    *,
    tz: tzinfo = UTC,
    label: str = "",
) -> Clip:
    """Copy the frames of ``sources`` shown from ``start`` to ``end`` (UTC epoch seconds) into
    the MP4 file ``output`` (replaced if it exists), synced before returning.

    The clip begins at the keyframe of the GOP whose frame is shown at ``start`` (at the first
    frame after ``start`` when none is, a keyframe: the next segment's first) and ends with the
    last frame shown before ``end``, plus, with B-frames, the reference frames it needs. Sources
    are the segments of one run (:func:`~gateway.evidence.clip.sources.runs`), in any order;
    those that cannot hold frames of the range are not opened. The timed-text track shows
    ``label`` (a camera id, say) and the wall time in ``tz``.

    Raises :class:`~gateway.evidence.clip.model.ClipError` if a source is missing or
    unreadable, if nothing is recorded in the range, if the segments of the range do not form
    one run, or if the output cannot be written; no output is left behind then.
    """
    prefix, ordered, wanted = prepare(sources, start, end, label)
    writer = Writer(output, start, end, tz, prefix)
    try:
        for source in wanted:
            if writer.video_done:
                break
            copy_source(writer, source)
        return writer.finish(len(ordered))
    except BaseException:
        writer.abort()
        raise


def write_clips(
    sources: Sequence[ClipSource],
    start: float,
    end: float,
    output: Callable[[int], Path],
    *,
    tz: tzinfo = UTC,
    label: str = "",
) -> list[Clip]:
    """Like :func:`write_clip` over sources that may hold several runs (a camera whose stream
    changed): one clip per run, the n-th (from 1) written to ``output(n)``. Each source is
    opened once. On error, every clip written is deleted."""
    prefix, ordered, wanted = prepare(sources, start, end, label)
    clips: list[Clip] = []
    writer = Writer(output(1), start, end, tz, prefix)
    try:
        for source in wanted:
            if writer.video_done:
                break
            with open_source(source.path) as container:
                layout = layout_of(container, source.path)
                if writer.layout is not None and layout != writer.layout:
                    clips.append(writer.finish(len(ordered)))
                    writer = Writer(output(len(clips) + 1), start, end, tz, prefix)
                copy_opened(writer, source, container, layout)
        if writer.container is not None or not clips:
            clips.append(writer.finish(len(ordered)))
        return clips
    except BaseException:
        writer.abort()
        for clip in clips:
            with contextlib.suppress(FileNotFoundError):
                clip.path.unlink()
        raise
