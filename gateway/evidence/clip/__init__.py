"""One evidence clip: a camera's recorded segments over a time range, copied into one MP4 file.

The clip is a stream copy (PyAV demux → mux, never a decode): every video NAL unit is written
as the camera sent it, SEI units included. ONVIF Media Signing puts its signatures in SEI "user
data unregistered" units and hashes every NAL unit of a GOP, so inserting parameter sets,
running a bitstream filter or dropping a unit would break the camera's own signature. Parameter
sets travel in the MP4 sample description (avcC/hvcC) alone, which therefore has to be the same
in every segment of one file: :func:`runs` splits a list of segments where it is not.

Timeline: a segment's indexed start is the wall time of its first packet, and the clip's time
zero is the wall time of its first frame, so every packet is placed at its wall time. A gap
between segments (the camera was offline) stays a gap in the file (players hold the last
picture) and the time a player shows, added to :attr:`Clip.start`, is the real time. Where the
index puts a segment's first frame at or before the previous segment's last frame (the camera's
clock and the wall clock drifting apart by a frame or more), that segment is placed later by
just enough that decode times keep increasing; :attr:`Clip.adjusted` says by how much at most.

A timed-text track carries the wall-clock time (:mod:`~gateway.evidence.clip.text`), and the
file is written with its index in front (faststart, :mod:`~gateway.evidence.clip.writer`).

- :mod:`~gateway.evidence.clip.model`: the clip, its sources and its error;
- :mod:`~gateway.evidence.clip.sources`: opening segments, their track layouts, runs, and which
  sources a range needs;
- :mod:`~gateway.evidence.clip.text`: the wall-clock timed-text track;
- :mod:`~gateway.evidence.clip.writer`: the output file, its tracks and timeline, finalising;
- :mod:`~gateway.evidence.clip.remux`: the copy of one source's packets of the range;
- :mod:`~gateway.evidence.clip.write`: :func:`write_clip` and :func:`write_clips`.
"""

from gateway.evidence.clip.model import Clip, ClipError, ClipSource
from gateway.evidence.clip.sources import runs
from gateway.evidence.clip.text import TEXT_FORMAT, TEXT_HANDLER
from gateway.evidence.clip.write import write_clip, write_clips

__all__ = [
    "TEXT_FORMAT",
    "TEXT_HANDLER",
    "Clip",
    "ClipError",
    "ClipSource",
    "runs",
    "write_clip",
    "write_clips",
]
