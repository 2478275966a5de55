"""camera-gateway: the edge daemon of a residential video-protection gateway box."""

__version__ = "0.1.0"
