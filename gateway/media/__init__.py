"""Media units shared by sources and consumers: packets, tracks, sessions, timestamp repair.

Nothing is imported here: :mod:`gateway.media.packet` loads PyAV (and FFmpeg), which the
supervisor process never needs.
"""
