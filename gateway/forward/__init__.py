"""Forwarding live video to the supervision centre: sessions, publishers, the uplink."""
