"""The evidence desk: exports and legal holds, as the daemon serves them on its control socket
and as the command line runs them itself on a stopped box. One place, so both journal alike.

Every request is a JSON object checked here (the control socket is untrusted input); every
answer is ``{"ok": true, ...}`` or ``{"ok": false, "message": ...}``.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.clock import utc_iso
from gateway.config import Config
from gateway.evidence.box import Integrity
from gateway.evidence.requests import ExportError, ExportRequest, HoldRequest, ReleaseRequest
from gateway.integrity.audit import AuditError
from gateway.storage.holds import HoldError
from gateway.storage.index import Index
from gateway.text import clip, display

__all__ = ["EvidenceDesk"]

log = logging.getLogger(__name__)


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="allow")

    action: Literal["export", "hold_add", "hold_release", "hold_list"]


class EvidenceDesk:
    def __init__(self, config: Config, index: Index, integrity: Integrity) -> None:
        self.config = config
        self.index = index
        self.integrity = integrity

    def handle(self, request: dict[str, Any], *, via: str) -> dict[str, Any]:
        """One request (``action`` and its fields); never raises for a bad request."""
        try:
            envelope = _Envelope.model_validate(request)
            fields = {k: v for k, v in request.items() if k not in ("action", "command")}
            if envelope.action == "export":
                return self.export(ExportRequest.model_validate(fields), via=via)
            if envelope.action == "hold_add":
                return self.hold_add(HoldRequest.model_validate(fields), via=via)
            if envelope.action == "hold_release":
                return self.hold_release(ReleaseRequest.model_validate(fields), via=via)
            return self.hold_list()
        except ValidationError as exc:
            return _refused(_problems(exc))
        except (ExportError, HoldError) as exc:
            return _refused(exc.reason)
        except AuditError as exc:
            return _refused(f"not done: the audit journal cannot be written ({exc})")

    def export(self, request: ExportRequest, *, via: str) -> dict[str, Any]:
        from gateway.evidence.export import run_export  # PyAV: loaded only to export

        result = run_export(
            request,
            config=self.config,
            index=self.index,
            integrity=self.integrity,
            tz=self.config.zone,
            requested_via=via,
        )
        log.info(
            "export of %s to %s by %s: manifest %s",
            ", ".join(request.cameras),
            request.output,
            display(request.operator),
            result.manifest_sha256[:16],
        )
        return {"ok": True, "export": result.as_dict()}

    def hold_add(self, request: HoldRequest, *, via: str) -> dict[str, Any]:
        known = {c.id for c in self.config.cameras} | set(self.integrity.sealer.cameras())
        for camera in request.cameras:
            if camera not in known:
                raise HoldError(f"unknown camera {camera!r}")
        holds = self.integrity.holds
        hold, added = holds.place(
            self.index,
            case=request.case,
            cameras=list(request.cameras),
            start=request.start,
            end=request.end,
            placed_by=request.operator,
            reason=request.reason,
        )
        try:
            self.integrity.audit.append(
                "hold_placed",
                hold=hold.id,
                case=hold.case,
                cameras=list(hold.cameras),
                start=utc_iso(hold.start),
                end=utc_iso(hold.end),
                expires=utc_iso(hold.expires),
                placed_by=hold.placed_by,
                reason=hold.reason,
                bytes=added,
                via=via,
            )
        except AuditError:
            holds.release(hold.id)
            raise
        segments = holds.covered(self.index, hold)
        return {
            "ok": True,
            "hold": hold.as_dict(),
            "segments": len(segments),
            "bytes": sum(s.bytes for s in segments),
        }

    def hold_release(self, request: ReleaseRequest, *, via: str) -> dict[str, Any]:
        holds = self.integrity.holds
        hold = next((h for h in holds.holds() if h.id == request.hold), None)
        if hold is None:
            raise HoldError(f"no hold {request.hold!r} (see `camera-gateway hold list`)")
        self.integrity.audit.append(
            "hold_released",
            hold=hold.id,
            case=hold.case,
            cameras=list(hold.cameras),
            released_by=request.operator,
            reason=request.reason,
            via=via,
        )
        holds.release(hold.id)
        return {"ok": True, "hold": hold.as_dict()}

    def hold_list(self) -> dict[str, Any]:
        holds = self.integrity.holds
        listed = holds.holds()
        return {
            "ok": True,
            "holds": [
                {
                    **h.as_dict(),
                    "bytes": sum(s.bytes for s in holds.covered(self.index, h)),
                }
                for h in listed
            ],
            "held_bytes": holds.held_bytes(self.index, listed),
            "quota": holds.quota,
        }


def _refused(message: str) -> dict[str, Any]:
    return {"ok": False, "message": clip(display(message), 2000)}


def _problems(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "request"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
