"""What an export or a hold asks for, checked as untrusted input (the control socket's, the
command line's): importable without PyAV, so the daemon checks a request without loading it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from gateway.text import check_text

__all__ = ["ExportError", "ExportRequest", "HoldRequest", "Line", "ReleaseRequest"]


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text.strip()


Line = Annotated[str, AfterValidator(check_text), AfterValidator(_not_blank)]


class ExportRequest(BaseModel):
    """What an officer or the landlord asks for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cameras: tuple[Annotated[str, StringConstraints(min_length=1, max_length=32)], ...] = Field(
        min_length=1, max_length=64
    )
    start: float = Field(ge=0, le=1e11, allow_inf_nan=False)
    end: float = Field(ge=0, le=1e11, allow_inf_nan=False)
    output: Path
    operator: Annotated[Line, StringConstraints(max_length=200)]
    reason: Annotated[Line, StringConstraints(max_length=500)]
    case: Annotated[Line, StringConstraints(max_length=100)] | None = None


class ExportError(Exception):
    """The export was refused or failed; nothing was written under the output name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HoldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cameras: tuple[Annotated[str, StringConstraints(min_length=1, max_length=32)], ...] = Field(
        min_length=1, max_length=64
    )
    start: float = Field(ge=0, le=1e11, allow_inf_nan=False)
    end: float = Field(ge=0, le=1e11, allow_inf_nan=False)
    case: Annotated[Line, StringConstraints(max_length=100)]
    operator: Annotated[Line, StringConstraints(max_length=200)]
    reason: Annotated[Line, StringConstraints(max_length=500)]


class ReleaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hold: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    operator: Annotated[Line, StringConstraints(max_length=200)]
    reason: Annotated[Line, StringConstraints(max_length=500)]
