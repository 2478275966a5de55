"""Media units shared by sources and consumers: packets, tracks, sessions, timestamp repair."""

from gateway.media.packet import Packet, SessionInfo, Track, TrackKind

__all__ = ["Packet", "SessionInfo", "Track", "TrackKind"]
