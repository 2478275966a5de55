"""The forward policy (CCH L126-1-1) as a table of inputs and answers: no thread, no clock, no
journal. The manager's own tests (test_forward_manager.py) check that it asks this function and
does what it answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from gateway.config import CameraConfig, ForwardMode, UplinkConfig
from gateway.forward.commands import ForwardCommand
from gateway.forward.policy import (
    Extend,
    Phase,
    Refuse,
    Start,
    Stop,
    configured_start,
    decide,
    forward_mode,
    is_due,
)

NOW = 1000.0
UPLINK = UplinkConfig.model_validate(
    {"url": "rtsp://centre.example/{site_id}/{camera_id}", "max_session": "30m"}
)


@dataclass(frozen=True)
class Session:
    phase: Phase = "active"
    deadline: float | None = NOW + 60


def _camera(forward: ForwardMode = "on_demand") -> CameraConfig:
    return CameraConfig(id="hall", url="rtsp://10.0.0.5/main", forward=forward)


def _start(duration: str = "15m", camera: str = "hall") -> ForwardCommand:
    return ForwardCommand.model_validate(
        {
            "action": "start",
            "camera": camera,
            "duration": duration,
            "reason": "call 4512",
            "requested_by": "op 7",
        }
    )


STOP = ForwardCommand(action="stop", camera="hall", requested_by="op 7")


def _decide(command: ForwardCommand, **inputs: Any) -> object:
    given: dict[str, Any] = {
        "camera": _camera(),
        "uplink": UPLINK,
        "session": None,
        "now": NOW,
        "cameras": ("hall", "yard"),
    }
    return decide(command, **{**given, **inputs})


def test_a_start_without_a_session_opens_one_ending_its_duration_after_the_command() -> None:
    assert _decide(_start("15m")) == Start(duration=900.0, deadline=NOW + 900)


def test_a_start_during_a_session_extends_it_from_now() -> None:
    assert _decide(_start("10m"), session=Session()) == Extend(duration=600.0, deadline=NOW + 600)


def test_a_stop_of_a_session_in_progress_stops_it() -> None:
    assert _decide(STOP, session=Session()) == Stop()


def test_the_duration_cap_is_the_uplink_max_session() -> None:
    assert _decide(_start("30m")) == Start(duration=1800.0, deadline=NOW + 1800)
    refused = _decide(_start("2h"))
    assert refused == Refuse(
        "duration 2h00m exceeds uplink.max_session (30m00s): transmission is limited to the "
        "time of the intervention"
    )
    assert _decide(_start("2h"), session=Session()) == refused, "an extension has the same cap"


@pytest.mark.parametrize(
    ("inputs", "reason"),
    [
        ({"camera": None}, "unknown camera 'hall' (cameras: hall, yard)"),
        ({"camera": None, "cameras": ()}, "unknown camera 'hall' (cameras: none)"),
        ({"uplink": None}, "no uplink is configured on this gateway"),
        ({"stopping": True}, "the gateway is stopping"),
        ({"camera": _camera("off")}, "forwarding is off for camera hall"),
        (
            {"camera": _camera("continuous")},
            "camera hall forwards continuously (configuration); change the configuration to "
            "stop it",
        ),
    ],
)
def test_refusals_that_hold_for_a_start_and_a_stop_alike(
    inputs: dict[str, Any], reason: str
) -> None:
    assert _decide(_start(), **inputs) == Refuse(reason)
    assert _decide(STOP, session=Session(), **inputs) == Refuse(reason)


def test_the_first_problem_a_requester_can_act_on_is_the_answer() -> None:
    assert _decide(_start("2h"), camera=None, uplink=None) == Refuse(
        "unknown camera 'hall' (cameras: hall, yard)"
    )
    assert _decide(_start("2h"), camera=_camera("off")) == Refuse(
        "forwarding is off for camera hall"
    )
    assert "exceeds uplink.max_session" in str(_decide(_start("2h"), session=Session("starting")))


def test_a_stop_without_a_session_is_refused() -> None:
    assert _decide(STOP) == Refuse("no forward session is active for camera hall")


@pytest.mark.parametrize(
    ("command", "phase", "reason"),
    [
        (
            _start(),
            "starting",
            "the forward session of camera hall is being started; try again in a moment",
        ),
        (
            STOP,
            "starting",
            "the forward session of camera hall is being started; try again in a moment",
        ),
        (
            _start(),
            "extending",
            "the forward session of camera hall is being extended; try again in a moment",
        ),
        (
            STOP,
            "extending",
            "the forward session of camera hall is being extended; try again in a moment",
        ),
        (
            _start(),
            "stopping",
            "the forward session of camera hall is being stopped; start again once it is",
        ),
        (STOP, "stopping", "the forward session of camera hall is already being stopped"),
    ],
)
def test_a_command_for_a_session_another_command_is_changing_is_answered_at_once(
    command: ForwardCommand, phase: Phase, reason: str
) -> None:
    assert _decide(command, session=Session(phase)) == Refuse(reason)


def test_a_session_without_deadline_is_never_extended() -> None:
    assert _decide(_start(), session=Session(deadline=None)) == Refuse(
        "camera hall forwards continuously"
    )


def test_only_the_configuration_starts_a_continuous_forward() -> None:
    assert configured_start(_camera("continuous"), UPLINK) == Start(duration=None, deadline=None)
    assert configured_start(_camera("on_demand"), UPLINK) is None
    assert configured_start(_camera("off"), UPLINK) is None
    assert configured_start(_camera("continuous"), None) is None


def test_without_an_uplink_every_camera_shows_forwarding_off() -> None:
    assert forward_mode(_camera("continuous"), UPLINK) == "continuous"
    assert forward_mode(_camera("on_demand"), UPLINK) == "on_demand"
    assert forward_mode(_camera("continuous"), None) == "off"


def test_a_session_is_due_at_its_deadline_and_only_once_settled() -> None:
    assert not is_due(Session(deadline=NOW + 1), NOW)
    assert is_due(Session(deadline=NOW), NOW)
    assert not is_due(Session(deadline=None), NOW + 10**9)
    for busy in ("starting", "extending", "stopping"):
        assert not is_due(Session(busy, deadline=NOW - 1), NOW), busy
