"""One camera's push target, made from the uplink configuration: the URL with its credentials
(for the pusher only), the form safe to show, and the TLS checks of a secure uplink (CA, pinned
keys, client certificate), so the worker that pushes needs no configuration of its own."""

from __future__ import annotations

from gateway.config import UplinkConfig
from gateway.forward.target import UplinkTarget
from gateway.push.transport import TlsPolicy

__all__ = ["uplink_target"]


def uplink_target(uplink: UplinkConfig, site_id: str, camera_id: str) -> UplinkTarget:
    """Where one camera is pushed, with the TLS checks of a secure uplink."""
    tls = uplink.tls
    policy = None
    if uplink.secure:
        policy = TlsPolicy(
            ca_file=str(tls.ca_file) if tls and tls.ca_file else None,
            pins=tuple(tls.pin_sha256) if tls else (),
            cert_file=str(tls.cert_file) if tls and tls.cert_file else None,
            key_file=str(tls.key_file) if tls and tls.key_file else None,
        )
    return UplinkTarget(
        push_url=uplink.push_url(site_id, camera_id),
        display=uplink.display_target(site_id, camera_id),
        tls=policy,
        connect_timeout=uplink.connect_timeout,
    )
