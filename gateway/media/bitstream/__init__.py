"""H.264 and H.265 bitstreams: the one place that knows how NAL units are cut and read.

- :mod:`.nal`: Annex B (start codes) and length-prefixed (AVCC/HVCC) buffers cut into NAL units,
  as offsets, at ``bytes.find`` speed: it runs on every packet the forwarder sends.
- :mod:`.h264`, :mod:`.h265`: NAL unit types (``NalType``), the sets of types that matter
  (slices, parameter sets, what opens an access unit), parameter sets found in a buffer, and
  the SPS parsed into a :class:`SequenceInfo` (size after cropping, frame rate, profile, level,
  chroma format, bit depths).
- :mod:`.pictures`: whether a packet opens the next picture's access unit (the normaliser).
- :mod:`.rbsp`: emulation prevention removed, Exp-Golomb reading, :class:`BitstreamError`.

Every byte read here comes from a camera. The parsers raise :class:`BitstreamError` (a
``ValueError``) and nothing else on any input, and their work is bounded by the input's length
and by the standards' own limits on counts (tested with random and truncated input).

Nothing here imports PyAV: the supervisor and the forwarder's protocol code can use it.
"""

from gateway.media.bitstream import h264, h265, nal, pictures
from gateway.media.bitstream.rbsp import BitstreamError, SequenceInfo

__all__ = ["BitstreamError", "SequenceInfo", "h264", "h265", "nal", "pictures"]
