"""RTSP push: messages, authentication, SDP, RTP/RTCP, the session, the publisher."""
