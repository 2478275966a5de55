"""Forward commands from untrusted channels: hostile payloads are refused with a short reason,
never with a traceback, and no free-text field can forge a log line or drive a terminal."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.daemon.control import ControlServer, Peer, call
from gateway.forward.commands import (
    MAX_REASON,
    CommandError,
    ForwardCommand,
    decode_mqtt_command,
    parse_command,
)

START = {"action": "start", "duration": "15m", "reason": "call 4512"}


def _start(**fields: Any) -> bytes:
    return json.dumps({**START, **fields}).encode()


def _refusal(payload: bytes) -> str:
    with pytest.raises(CommandError) as error:
        decode_mqtt_command("hall", payload, origin="mqtt")
    return str(error.value)


def test_a_valid_mqtt_command_names_the_topic_camera_and_the_channel() -> None:
    command = decode_mqtt_command(
        "hall", _start(camera="yard", origin="forged", requested_by="CSU, op 7"), origin="mqtt"
    )

    assert command == ForwardCommand(
        action="start",
        camera="hall",
        duration=900.0,
        reason="call 4512",
        requested_by="CSU, op 7",
        origin="mqtt",
    )
    stop = decode_mqtt_command("hall", b'{"action": "stop"}', origin="mqtt")
    assert stop.requested_by == "mqtt"


HOSTILE_PAYLOADS = [
    pytest.param(
        b"[" * 200_000, "the payload is 200000 bytes; a command is at most 16384", id="nested-200k"
    ),
    pytest.param(
        b"[" * 16_000, "the payload is not a JSON object: nested too deeply", id="nested-16k"
    ),
    pytest.param(
        b'{"action":"start","duration":1e400,"reason":"r"}',
        "duration: duration inf is more than 100 years",
        id="float-1e400",
    ),
    pytest.param(
        b'{"action":"start","duration":1' + b"0" * 400 + b',"reason":"r"}',
        "duration: duration an integer of about 401 digits is more than 100 years",
        id="int-10**400",
    ),
    pytest.param(
        b'{"action":"start","duration":NaN,"reason":"r"}',
        "duration: expected a duration such as 90s or 30d, got NaN",
        id="nan",
    ),
    pytest.param(
        b'{"action":"start","duration":1' + b"0" * 5000 + b',"reason":"r"}',
        "the payload is not a JSON object",
        id="int-5000-digits",
    ),
    pytest.param(
        _start(duration="9" * 3 * 1024 * 1024),
        f"the payload is {len(_start(duration='9' * 3 * 1024 * 1024))} bytes; "
        "a command is at most 16384",
        id="3MB-duration",
    ),
    pytest.param(
        _start(reason="x" * 3 * 1024 * 1024),
        f"the payload is {len(_start(reason='x' * 3 * 1024 * 1024))} bytes; "
        "a command is at most 16384",
        id="3MB-reason",
    ),
    pytest.param(b"\xff\xfe\xfd{", "the payload is not a JSON object", id="invalid-utf8"),
    pytest.param(
        b'{"action": "st\xc3\x28rt"}', "the payload is not a JSON object", id="bad-utf8-inside"
    ),
    pytest.param(
        json.dumps(["a", "list"]).encode(), "the payload is not a JSON object", id="array"
    ),
    pytest.param(b"42", "the payload is not a JSON object", id="number"),
    pytest.param(b"", "the payload is not a JSON object", id="empty"),
    pytest.param(
        _start(duration=[[[[["15m"]]]]]),
        "duration: expected a duration such as 90s or 30d, got a list of 1 item",
        id="nested-duration",
    ),
    pytest.param(
        _start(action=10**30), "action: Input should be 'start' or 'stop'", id="number-action"
    ),
    pytest.param(
        _start(requested_by={"name": "x"}),
        "requested_by: Input should be a valid string",
        id="object-name",
    ),
]


@pytest.mark.parametrize(("payload", "expected"), HOSTILE_PAYLOADS)
def test_hostile_mqtt_payloads_are_refused_with_a_short_reason(
    payload: bytes, expected: str
) -> None:
    started = time.perf_counter()

    reason = _refusal(payload)

    assert reason == expected
    assert len(reason) <= MAX_REASON
    assert time.perf_counter() - started < 0.5


def test_a_3mb_duration_is_quoted_by_its_first_characters_and_its_length() -> None:
    # The control socket takes up to 64 KiB; the model itself takes anything.
    with pytest.raises(CommandError) as error:
        parse_command({**START, "camera": "hall", "requested_by": "x", "duration": "9" * 3145728})

    assert str(error.value).startswith(
        f"duration: invalid duration '{'9' * 24}…' (3145728 characters): use seconds"
    )
    assert len(str(error.value)) <= MAX_REASON


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        (
            "requested_by",
            "CSU Marseille\n2026-01-01T00:00:00 WARNING forged line",
            "requested_by: contains U+000A (a control character) at position 14: not allowed",
        ),
        (
            "reason",
            "call 4512\x1b[2J\x1b[H",
            "reason: contains U+001B (a control character) at position 10: not allowed",
        ),
        (
            "reason",
            "call \u202e2154",
            "reason: contains U+202E (an invisible format character) at position 6: not allowed",
        ),
        (
            "requested_by",
            "op\u20667\u2069",
            "requested_by: contains U+2066 (an invisible format character) at position 3: "
            "not allowed",
        ),
        ("requested_by", "   ", "requested_by: must not be blank"),
        ("requested_by", "x" * 201, "requested_by: String should have at most 200 characters"),
        ("reason", "x" * 501, "reason: String should have at most 500 characters"),
        (
            "camera",
            "hall\r\n",
            "camera: contains U+000D (a control character) at position 5: not allowed",
        ),
    ],
)
def test_free_text_fields_refuse_what_would_forge_a_line_or_drive_a_terminal(
    field: str, value: str, expected: str
) -> None:
    payload = _start(**{field: value}) if field != "camera" else _start()
    camera = value if field == "camera" else "hall"
    with pytest.raises(CommandError) as error:
        decode_mqtt_command(camera, payload, origin="mqtt")

    assert str(error.value) == expected


@pytest.mark.parametrize(
    "data",
    [
        [],
        "start",
        None,
        {"action": "start", "camera": 10**400, "requested_by": "x"},
        {**START, "camera": "hall", "requested_by": "x", "duration": 10**400},
        {**START, "camera": "hall", "requested_by": "x", "duration": float("inf")},
        {**START, "camera": "hall", "requested_by": "x", "duration": {"nested": [1] * 10_000}},
        {**START, "camera": "hall", "requested_by": "x", "reason": b"\xff\x1b"},
        {**START, "camera": "hall", "requested_by": "x", "k\x1bey" * 1000: 1},
        {**START, "camera": "hall", "requested_by": "x", **{f"extra{n}": n for n in range(5000)}},
    ],
)
def test_parse_command_raises_command_error_and_nothing_else(data: Any) -> None:
    with pytest.raises(CommandError) as error:
        parse_command(data)

    reason = str(error.value)
    assert 0 < len(reason) <= MAX_REASON
    assert all(c.isprintable() for c in reason)


def test_many_unknown_fields_are_counted_not_listed() -> None:
    data = {**START, "camera": "hall", "requested_by": "x", **{f"extra{n}": n for n in range(50)}}
    with pytest.raises(CommandError) as error:
        parse_command(data)

    assert str(error.value) == (
        "extra0: unknown field; extra1: unknown field; extra2: unknown field; and 47 more problems"
    )


def test_rejections_are_logged_once_then_counted(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.forward import commands
    from gateway.ratelimit import RateLimitedLog

    limited = RateLimitedLog(commands.log, "%d more rejected in the last minute", timer=False)
    monkeypatch.setattr(commands, "_REJECTIONS", limited)  # a minute of its own
    caplog.set_level(logging.WARNING, logger="gateway.forward.commands")
    for _ in range(200):
        with pytest.raises(CommandError):
            decode_mqtt_command("hall", b"[" * 200_000, origin="mqtt")

    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.forward.commands"]
    assert lines == [
        "forward command rejected (mqtt): the payload is 200000 bytes; a command is at most 16384"
    ]
    assert limited.suppressed == 199


def test_the_control_socket_path_goes_through_the_same_validation(tmp_path: Path) -> None:
    def handler(request: dict[str, Any], peer: Peer) -> dict[str, Any]:
        # As the daemon does: the request's fields, who asks by default, and the channel.
        fields = {k: v for k, v in request.items() if k != "command"}
        fields.setdefault("requested_by", peer.user)
        fields["origin"] = f"command line, {peer.describe()}"
        try:
            command = parse_command(fields)
        except CommandError as exc:
            return {"ok": False, "message": str(exc)}
        return {"ok": True, "message": "accepted", "session": command.model_dump()}

    server = ControlServer(tmp_path / "ctl.sock", handler)
    server.start()
    try:
        forged = call(
            server.path,
            {"command": "forward", **START, "camera": "hall", "requested_by": "op 7\nFAKE"},
        )
        huge = call(
            server.path, {"command": "forward", **START, "camera": "hall", "duration": 10**400}
        )
        good = call(server.path, {"command": "forward", **START, "camera": "hall"})
    finally:
        server.stop()

    assert forged == {
        "ok": False,
        "message": "requested_by: contains U+000A (a control character) at position 5: not allowed",
    }
    assert (
        huge["message"]
        == "duration: duration an integer of about 401 digits is more than 100 years"
    )
    assert good["ok"], good
    assert good["session"]["origin"].startswith("command line, local user")
