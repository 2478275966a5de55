"""Answers to the MQTT commands: every command gets one, whatever becomes of it.

A command on ``P/cameras/<id>/forward/set``, ``.../snapshot/set`` or
``.../analysis/relearn/set`` is answered with one JSON document (:func:`answer`):

- always on ``P/cameras/<id>/forward/result``, ``.../snapshot/result`` or
  ``.../analysis/relearn/result`` (QoS 1, not retained), so that MQTT 3.1.1 clients and the
  centre's log see every answer; the request's own ``id`` field, when it has one, is echoed;
- and, when an MQTT 5 request carries a Response Topic, on that topic too (QoS 1, not
  retained). Both copies carry the request's Correlation Data back.

The response topic and the correlation data come from whoever sends a command, so they are
untrusted. The box would otherwise publish wherever a requester chooses, so a response topic
outside ``P/response/`` is refused: the command is not carried out, and the refusal is answered
on ``.../result`` only. So is one that is empty, longer than :data:`MAX_RESPONSE_TOPIC` bytes, or
holds a wildcard or a control character, and correlation data over :data:`MAX_CORRELATION` bytes.
An answer quotes no payload: its message is the command's own result, safe to publish.

A request waiting for the command thread holds at most :data:`MAX_MQTT_PAYLOAD` bytes of
payload (a larger one is refused at once and only its size kept), a response topic of 256 bytes
and 64 of correlation data: 100 of them (the queue's bound) take under 2 MB.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.clock import utc_iso
from gateway.commands import MAX_MQTT_PAYLOAD
from gateway.ratelimit import RateLimitedLog
from gateway.telemetry.events import Event, EventQueue
from gateway.telemetry.mqtt.snapshots import (
    PUBLISH_OVERHEAD,
    SNAPSHOT_PUBLISH_WAIT,
    SnapshotHandler,
)
from gateway.text import check_text, clip, display, excerpt

__all__ = [
    "COMMAND_TOPICS",
    "MAX_CORRELATION",
    "MAX_REQUEST_ID",
    "MAX_RESPONSE_TOPIC",
    "RESULT_TOPICS",
    "CommandAnswers",
    "CommandHandler",
    "Request",
    "answer",
    "read_request",
    "response_topic_problem",
]

log = logging.getLogger(__name__)

Kind = Literal["forward", "snapshot", "relearn"]

COMMAND_TOPICS: dict[tuple[str, ...], Kind] = {
    ("forward", "set"): "forward",
    ("snapshot", "set"): "snapshot",
    ("analysis", "relearn", "set"): "relearn",
}
"""Topics under ``P/cameras/<id>/`` that carry commands, and the kind of each."""
RESULT_TOPICS: dict[Kind, tuple[str, ...]] = {
    "forward": ("forward", "result"),
    "snapshot": ("snapshot", "result"),
    "relearn": ("analysis", "relearn", "result"),
}
"""Where, under ``P/cameras/<id>/``, each kind of command is answered."""

MAX_RESPONSE_TOPIC = 256
"""Bytes of a response topic: ``P/response/<requester>/<request>`` needs well under 100; the
cap keeps each waiting request small."""
MAX_CORRELATION = 64
"""Bytes of correlation data: a UUID is 16, a hex SHA-256 64."""
MAX_REQUEST_ID = 64
"""Characters of a request's ``id`` (a 3.1.1 client's correlation), echoed in its answer."""
_MAX_INTEGER_ID = 2**53 - 1
"""The largest integer ``id`` echoed: what a JavaScript client reads back exactly."""
BAD_ID = f"id: must be an integer or a string of 1 to {MAX_REQUEST_ID} printable characters"
BUSY = "the gateway is busy: too many commands waiting; try again"

_refused = RateLimitedLog(log, "MQTT: %d more commands refused in the last minute")
_unsent = RateLimitedLog(log, "MQTT: %d more answers not sent in the last minute")
_failed = RateLimitedLog(
    log, "MQTT: %d more commands failed in the last minute", level=logging.ERROR
)

CommandHandler = Callable[[str, bytes], Mapping[str, Any] | None]
"""Carries out a command: the camera id (from the topic) and the payload; returns the result
(``ok``, ``message`` and the command's own fields), None if it gives none."""


class Connection(Protocol):
    """What answering needs of the publisher."""

    @property
    def client(self) -> paho.Client | None: ...

    @property
    def connected(self) -> bool: ...

    @property
    def max_packet(self) -> int | None: ...

    def topic(self, *parts: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Request:
    """A command as received: what to carry out, and where and how to answer it."""

    kind: Kind
    camera: str
    """From the topic: untrusted, checked by the command itself."""
    payload: bytes
    """Without its ``id`` field (which is not part of the command)."""
    request_id: str | int | None = None
    response_topic: str | None = None
    """Checked (:func:`response_topic_problem`); None when absent or refused."""
    correlation: bytes | None = None
    refusal: str | None = None
    """Why the command is refused before it is carried out, if it is."""


def response_topic_problem(topic: str, prefix: str) -> str | None:
    """What is wrong with a response topic for the box ``prefix`` (``P``); None if nothing."""
    if not topic:
        return "the response topic is empty"
    size = len(topic.encode("utf-8", "surrogatepass"))
    if size > MAX_RESPONSE_TOPIC:
        return f"the response topic is {size} bytes; at most {MAX_RESPONSE_TOPIC}"
    if "+" in topic or "#" in topic:
        return f"the response topic {excerpt(topic)} holds a wildcard (+ or #)"
    try:
        check_text(topic)
    except ValueError as exc:
        return f"the response topic {exc}"
    base = f"{prefix}/response/"
    if not topic.startswith(base) or len(topic) == len(base):
        return f"the response topic {excerpt(topic)} is not under {base}"
    return None


def read_request(
    kind: Kind, camera: str, payload: bytes, properties: object, *, prefix: str
) -> Request:
    """A received command (``properties``: its MQTT 5 properties, or None), checked for what
    answering it needs; the command itself is checked by its handler."""
    refusals: list[str] = []
    correlation = getattr(properties, "CorrelationData", None)
    if isinstance(correlation, bytes | bytearray) and len(correlation) > MAX_CORRELATION:
        refusals.append(
            f"the correlation data is {len(correlation)} bytes; at most {MAX_CORRELATION}"
        )
        correlation = None
    asked = getattr(properties, "ResponseTopic", None)
    topic = None if asked is None else str(asked)
    if topic is not None and (problem := response_topic_problem(topic, prefix)) is not None:
        refusals.append(problem)
    if refusals:
        topic = None  # a refused response topic or correlation data: answered on .../result
    request_id = None
    if len(payload) > MAX_MQTT_PAYLOAD:
        refusals.append(
            f"the payload is {len(payload)} bytes; a command is at most {MAX_MQTT_PAYLOAD}"
        )
        payload = b""
    else:
        payload, request_id, problem = _split_id(payload)
        if problem is not None:
            refusals.append(problem)
    return Request(
        kind=kind,
        camera=camera,
        payload=payload,
        request_id=request_id,
        response_topic=topic,
        correlation=bytes(correlation) if isinstance(correlation, bytes | bytearray) else None,
        refusal="; ".join(refusals) or None,
    )


def _split_id(payload: bytes) -> tuple[bytes, str | int | None, str | None]:
    """The payload without its ``id`` field, the id, and what is wrong with the id. A payload
    that is not a JSON object is left as it is, for its command to say so."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return payload, None, None
    if not isinstance(data, dict) or "id" not in data:
        return payload, None, None
    value = data.pop("id")
    if not _good_id(value):
        return payload, None, BAD_ID
    try:
        return json.dumps(data).encode(), value, None
    except (ValueError, RecursionError):
        return payload, value, None


def _good_id(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) <= _MAX_INTEGER_ID
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_REQUEST_ID:
        return False
    try:
        check_text(value)
    except ValueError:
        return False
    return True


def answer(request: Request, result: Mapping[str, Any] | None) -> dict[str, Any]:
    """The answer to ``request``, from its command's ``result``."""
    if result is None:
        result = {"ok": False, "message": "the command gave no answer (see the events)"}
    ok = bool(result.get("ok"))
    document: dict[str, Any] = {
        "ok": ok,
        "command": request.kind,
        "camera": clip(display(request.camera), 64),
        "message": str(result.get("message") or ("done" if ok else "refused")),
        "at": utc_iso(time.time()),
    }
    if request.request_id is not None:
        document["id"] = request.request_id
    if request.kind == "forward":
        document.update(_forward_fields(result))
    elif request.kind == "snapshot":
        document.update({key: result.get(key) for key in _SNAPSHOT_FIELDS})
    return document


_SNAPSHOT_FIELDS = ("sha256", "bytes", "width", "height", "keyframe_at", "requested_by")


def _forward_fields(result: Mapping[str, Any]) -> dict[str, Any]:
    """A forward's session, as far as the answer tells it: its id, ``active`` or ``stopped``,
    when it started and ends (``until``; null: continuous); a stop's totals. Never the reason
    (the intervention: the journal's business) nor the centre's address."""
    session = result.get("session")
    if not isinstance(session, Mapping) or not session.get("session"):
        return {"session": None, "state": None, "started": None, "until": None}
    stopped = "stop_reason" in session
    fields = {
        "session": session.get("session"),
        "state": "stopped" if stopped else "active",
        "started": session.get("started"),
        "until": None if stopped else session.get("ends"),
    }
    if stopped:
        fields.update({key: session.get(key) for key in ("stop_reason", "duration", "bytes_sent")})
    return fields


class CommandAnswers:
    """Carries out each command on the command thread (:meth:`carry_out`), or answers it busy
    (:meth:`busy`), and publishes its answer."""

    def __init__(
        self,
        link: Connection,
        *,
        events: EventQueue,
        on_forward: CommandHandler,
        on_snapshot: SnapshotHandler | None,
        on_relearn: CommandHandler | None,
    ) -> None:
        self._link = link
        self._events = events
        self._on_forward = on_forward
        self._on_snapshot = on_snapshot
        self._on_relearn = on_relearn

    def read(self, message: paho.MQTTMessage) -> Request | None:
        """The command in ``message``; None if its topic is not a command's."""
        prefix = self._link.topic()
        if not message.topic.startswith(prefix + "/"):
            return None
        tail = message.topic[len(prefix) + 1 :].split("/")
        kind = COMMAND_TOPICS.get(tuple(tail[2:])) if len(tail) > 2 else None
        if kind is None or tail[0] != "cameras":
            return None
        properties = getattr(message, "properties", None)
        payload = bytes(message.payload)
        return read_request(kind, tail[1], payload, properties, prefix=prefix)

    def busy(self, request: Request) -> None:
        """Answer a request the command queue has no room for (paho's network thread)."""
        self._publish(request, answer(request, _refusal(BUSY)))

    def carry_out(self, request: Request) -> None:
        """Carry out ``request`` and answer it; a failure is an answer that says so."""
        if request.refusal is not None:
            _refused.log("MQTT: %s command refused: %s", request.kind, request.refusal)
            fields = {"command": request.kind, "reason": request.refusal, "origin": "mqtt"}
            self._events.put(Event(kind="command_rejected", time=time.time(), fields=fields))
            self._publish(request, answer(request, _refusal(request.refusal)))
            return
        try:
            if request.kind == "snapshot" and self._on_snapshot is not None:
                self._snapshot(self._on_snapshot, request)
                return
            handler = self._on_forward if request.kind == "forward" else self._on_relearn
            if handler is None:
                result: Mapping[str, Any] | None = _refusal("this gateway does not take it")
            else:
                result = handler(request.camera, request.payload)
        except Exception:
            _failed.log("MQTT: command for camera %s failed", request.camera, exc_info=True)
            result = _refusal("the command failed (internal error, logged)")
        self._publish(request, answer(request, result))

    def _snapshot(self, take: SnapshotHandler, request: Request) -> None:
        """Take the snapshot, publish the JPEG, then the answer: whatever happens, a failure is
        an answer that says it (and a log line)."""
        camera = request.camera
        if not self._link.connected:
            _failed.log("MQTT: snapshot for camera %s not taken: the broker is away", camera)
            return
        topic = self._link.topic("cameras", camera, "snapshot")
        room = None
        if (limit := self._link.max_packet) is not None:
            room = max(0, limit - len(topic.encode()) - PUBLISH_OVERHEAD)
        result = take(camera, request.payload, room)
        document = result.as_dict()
        if result.jpeg is not None:
            problem = self._deliver(topic, result.jpeg)
            if problem is not None:
                _failed.log("MQTT: snapshot of camera %s not delivered: %s", camera, problem)
                message = f"the snapshot was taken but not delivered: {problem}"
                document.update(ok=False, message=message)
        self._publish(request, answer(request, document))

    def _deliver(self, topic: str, payload: bytes) -> str | None:
        """Publish raw bytes (QoS 1, not retained) and wait for the broker's acknowledgement;
        None once acknowledged, else what went wrong."""
        client = self._link.client
        if client is None:
            return "not connected to the broker"
        try:
            info = client.publish(topic, payload, qos=1, retain=False)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return f"the broker cannot take it now ({paho.error_string(info.rc)})"
            info.wait_for_publish(SNAPSHOT_PUBLISH_WAIT)
        except (RuntimeError, ValueError) as exc:
            return str(exc)
        if not info.is_published():
            return f"the broker did not acknowledge it within {SNAPSHOT_PUBLISH_WAIT:.0f} s"
        return None

    def _publish(self, request: Request, document: Mapping[str, Any]) -> None:
        """The answer on ``.../result``, then on the response topic if there is one."""
        body = json.dumps(document).encode()
        result = self._link.topic("cameras", request.camera, *RESULT_TOPICS[request.kind])
        topics = [result] if request.response_topic is None else [result, request.response_topic]
        client = self._link.client
        for topic in topics:
            properties = None
            if request.correlation is not None:
                properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                properties.CorrelationData = request.correlation
            try:
                rc = MQTTErrorCode.MQTT_ERR_NO_CONN
                if client is not None:
                    rc = client.publish(topic, body, qos=1, properties=properties).rc
            except (RuntimeError, ValueError) as exc:
                _unsent.log("MQTT: answer for camera %s not sent: %s", request.camera, exc)
                continue
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                what = paho.error_string(rc)
                _unsent.log("MQTT: answer for camera %s not sent: %s", request.camera, what)


def _refusal(message: str) -> dict[str, Any]:
    return {"ok": False, "message": message}
