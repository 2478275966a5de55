"""Whether a forward command may be carried out, and what it then does: a pure function.

French law (Code de la construction et de l'habitation, L126-1-1) allows images of a
residence's common areas to reach the police in real time and only for the time of an
intervention. So a camera forwards ``on_demand`` by default: a session needs a command with a
duration capped by ``uplink.max_session``, and ends by itself at its deadline; ``continuous`` is
for the cameras whose transmission is covered by an authorisation, and only the configuration
starts or stops it.

Nothing here reads a clock, takes a lock or touches a journal: the manager hands in the command,
the camera's configuration, the uplink's, the camera's current session and the time, and gets a
:data:`Decision` back. So every legal rule is tested as a table of inputs and answers, without a
thread, and the manager can decide under its lock in microseconds.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal, Protocol

from gateway.config import CameraConfig, ForwardMode, UplinkConfig
from gateway.forward.commands import ForwardCommand
from gateway.units import format_duration

__all__ = [
    "BUSY",
    "CurrentSession",
    "Decision",
    "Extend",
    "Phase",
    "Refuse",
    "Start",
    "Stop",
    "configured_start",
    "decide",
    "forward_mode",
    "is_due",
]

Phase = Literal["starting", "active", "extending", "stopping"]
"""Where a camera's session is. Only ``active`` is settled: in the other phases the manager is
journalling or waiting on the camera's link outside its lock, and the session is that command's
alone until it is done."""

BUSY: frozenset[Phase] = frozenset({"starting", "extending", "stopping"})


class CurrentSession(Protocol):
    """What the policy needs to know of a camera's session (the manager's record has more)."""

    @property
    def phase(self) -> Phase: ...

    @property
    def deadline(self) -> float | None:
        """Monotonic time the session ends by itself; None: continuous."""
        ...


@dataclass(frozen=True, slots=True)
class Refuse:
    """Nothing happens; ``reason`` is for the requester (safe to show, log and publish)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Start:
    """Open a session. ``duration`` and ``deadline`` (monotonic) are None for a continuous one.

    The deadline is counted from the command, so the time the journal and the link take is
    inside the duration the requester was granted, never added to it."""

    duration: float | None
    deadline: float | None


@dataclass(frozen=True, slots=True)
class Extend:
    """Move the deadline of the session in progress: ``duration`` from the command, within the
    same cap as a start (a session never runs past ``max_session`` from its last command)."""

    duration: float
    deadline: float


@dataclass(frozen=True, slots=True)
class Stop:
    """End the session in progress."""


Decision = Refuse | Start | Extend | Stop


def forward_mode(camera: CameraConfig, uplink: UplinkConfig | None) -> ForwardMode:
    """The mode a camera's status shows: without an uplink nothing can be forwarded."""
    return camera.forward if uplink is not None else "off"


def configured_start(camera: CameraConfig, uplink: UplinkConfig | None) -> Start | None:
    """The session the configuration itself asks for: a continuous camera's, else none."""
    if uplink is None or camera.forward != "continuous":
        return None
    return Start(duration=None, deadline=None)


def is_due(session: CurrentSession, now: float) -> bool:
    """A settled on-demand session whose time is up (``now``: monotonic). A session being
    started, extended or stopped is left to the command doing it."""
    return session.phase == "active" and session.deadline is not None and now >= session.deadline


def decide(
    command: ForwardCommand,
    *,
    camera: CameraConfig | None,
    uplink: UplinkConfig | None,
    session: CurrentSession | None,
    now: float,
    cameras: Collection[str] = (),
    stopping: bool = False,
) -> Decision:
    """What ``command`` does, or why it is refused.

    ``camera`` is None for a camera the gateway does not have (``cameras`` lists those it has,
    for the answer); ``session`` is the camera's current one, if any; ``now`` is monotonic;
    ``stopping``: the gateway is shutting down. The refusals come in this order, so a command
    wrong in several ways gets the answer a requester can act on first.
    """
    name = command.camera
    if camera is None:
        known = ", ".join(sorted(cameras)) or "none"
        return Refuse(f"unknown camera {name!r} (cameras: {known})")
    if uplink is None:
        return Refuse("no uplink is configured on this gateway")
    if stopping:
        return Refuse("the gateway is stopping")
    if camera.forward == "off":
        return Refuse(f"forwarding is off for camera {name}")
    if camera.forward == "continuous":
        return Refuse(
            f"camera {name} forwards continuously (configuration); "
            "change the configuration to stop it"
        )
    if command.action == "stop":
        if session is None:
            return Refuse(f"no forward session is active for camera {name}")
        if session.phase in BUSY:
            return Refuse(_busy(command, session.phase))
        return Stop()
    duration = command.duration or 0.0
    if duration > uplink.max_session:
        return Refuse(
            f"duration {format_duration(duration)} exceeds uplink.max_session "
            f"({format_duration(uplink.max_session)}): transmission is limited to the "
            "time of the intervention"
        )
    if session is None:
        return Start(duration=duration, deadline=now + duration)
    if session.phase in BUSY:
        return Refuse(_busy(command, session.phase))
    if session.deadline is None:
        return Refuse(f"camera {name} forwards continuously")
    return Extend(duration=duration, deadline=now + duration)


def _busy(command: ForwardCommand, phase: Phase) -> str:
    """The answer to a command for a camera whose session another command is changing."""
    name = command.camera
    if phase == "stopping":
        if command.action == "stop":
            return f"the forward session of camera {name} is already being stopped"
        return f"the forward session of camera {name} is being stopped; start again once it is"
    doing = "started" if phase == "starting" else "extended"
    return f"the forward session of camera {name} is being {doing}; try again in a moment"
