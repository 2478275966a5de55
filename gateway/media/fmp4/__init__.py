"""Reading fragmented MP4 segments without decoding: box walk, facts and crash repair.

Only box headers and the small ``moov``/``moof`` boxes are read; ``mdat`` payloads are skipped,
so a day of recordings is indexed in seconds.

Every file is untrusted input: a damaged or hostile file gives :class:`Fmp4Error` (or
``OSError`` for a real I/O error), never another exception, and the work done is bounded by
the file's size. Each count and offset is checked against the box that holds it, and a
fragment is kept only when its samples fit in the ``mdat`` that follows it.

After damage, the walk resyncs on the next plausible ``moof`` (sane size, followed by an
``mdat`` whose size fits, every sample run inside that ``mdat``), so good fragments after a
damaged one are still found. :func:`repair` cuts a file that was being written when the power
went to its last good fragment; when fragments before it are damaged, it rebuilds the file
from the movie header and the good fragments alone.

The package's modules: :mod:`~gateway.media.fmp4.boxes` (the facts, bounded reads, box headers,
the movie header), :mod:`~gateway.media.fmp4.fragments` (the walk over the fragments,
:func:`scan`) and :mod:`~gateway.media.fmp4.rebuild` (:func:`repair`).
"""

from __future__ import annotations

from gateway.media.fmp4.boxes import Fmp4Error, SegmentFacts, TrackFacts
from gateway.media.fmp4.fragments import scan
from gateway.media.fmp4.rebuild import repair

__all__ = ["Fmp4Error", "SegmentFacts", "TrackFacts", "repair", "scan"]
