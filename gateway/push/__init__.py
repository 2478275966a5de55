"""Pushing a camera's live stream to the centre: RTMP and RTSP spoken by hand.

The wire formats (``rtmp.chunk``, ``rtmp.amf0``, ``rtsp.messages``, ``rtsp.rtp``, ...) and the
protocol sessions (``rtmp.session``, ``rtsp.session``) never touch a socket or a clock: they take
bytes in and hand bytes back. :mod:`gateway.push.transport` owns the socket, and the publishers
(``rtmp.publisher``, ``rtsp.publisher``) only drive a session over it.
"""
