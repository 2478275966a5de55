"""RTMP push: the wire format (chunks, AMF0, handshake, FLV bodies), the session, the publisher."""
