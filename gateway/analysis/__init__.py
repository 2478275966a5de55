"""Camera integrity: is the picture covered, out of focus, turned away, or unmasked?

A pure library (no thread, no clock, no I/O): the daemon hands it keyframes and the time.
"""

from gateway.analysis.decode import KeyframeDecoder
from gateway.analysis.errors import AnalysisError, DecodeError, FrameError
from gateway.analysis.frame import Frame, frame_from_array
from gateway.analysis.judge import Judgement, Reference, Settings, judge
from gateway.analysis.measures import Measures, measure
from gateway.analysis.monitor import CONDITIONS, CameraMonitor, Change, Condition, State, Status
from gateway.analysis.motion import Displacement
from gateway.analysis.privacy import Zone, ZoneCheck, check_zones

__all__ = [
    "CONDITIONS",
    "AnalysisError",
    "CameraMonitor",
    "Change",
    "Condition",
    "DecodeError",
    "Displacement",
    "Frame",
    "FrameError",
    "Judgement",
    "KeyframeDecoder",
    "Measures",
    "Reference",
    "Settings",
    "State",
    "Status",
    "Zone",
    "ZoneCheck",
    "check_zones",
    "frame_from_array",
    "judge",
    "measure",
]
