"""The MQTT side of the daemon: one connection, retained status, events, commands.

Topics, with ``P = <topic_prefix>/<site_id>``:

- ``P/availability``: retained ``online``/``offline``; ``offline`` is also the last will;
- ``P/cameras/<id>/status``: retained JSON, on every significant change and every
  ``status_interval``;
- ``P/state``: retained JSON about the box;
- ``P/seal``: retained JSON, the heads (sequence number and hash) of the audit journal and of
  each camera's seal chain, and the key's fingerprint, on every change: the centre's copy lets
  anyone detect a journal or chain cut short or rolled back on the box;
- ``P/events``: JSON events, not retained, QoS 1;
- ``P/cameras/<id>/forward/set``: forward commands, QoS 1, answered on
  ``P/cameras/<id>/forward/result``;
- ``P/cameras/<id>/snapshot/set``: snapshot requests, answered on ``P/cameras/<id>/snapshot``
  (the JPEG itself, QoS 1, not retained, only when one was taken) and then on
  ``P/cameras/<id>/snapshot/result``;
- ``P/cameras/<id>/analysis/relearn/set``: relearn requests, answered on
  ``P/cameras/<id>/analysis/relearn/result``;
- the requester's MQTT 5 Response Topic, if it is under ``P/response/``: each answer again,
  with the request's Correlation Data.

Every command gets one answer (JSON, QoS 1, not retained: ``ok``, ``command``, ``camera``,
``message``, ``at``, the request's ``id`` if it had one, and the command's own fields), even a
refused, failed or turned away busy one: see :mod:`gateway.telemetry.mqtt.answers`.

paho's network thread keeps the connection (and reconnects, backing off from 1 s to 30 s);
this module's own thread builds and publishes payloads, and another carries out the commands in
order (a slow one never holds up the status), so nothing here ever waits on the broker
from a camera's or a recorder's thread. While the broker is away, the latest status is kept
(and republished on reconnection) and events wait in a bounded queue. MQTT 5 is tried first;
a broker that refuses the protocol version gets MQTT 3.1.1.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config.mqtt import MqttConfig
from gateway.ratelimit import RateLimitedLog
from gateway.telemetry.events import EventQueue
from gateway.telemetry.mqtt.answers import CommandAnswers, CommandHandler, Request
from gateway.telemetry.mqtt.payloads import (
    camera_payload,
    event_payload,
    significant,
    state_payload,
)
from gateway.telemetry.mqtt.snapshots import SnapshotHandler
from gateway.telemetry.state import CameraStatus, StorageUsage

__all__ = ["MqttPublisher", "MqttView"]

log = logging.getLogger(__name__)

_PROTOCOL_REFUSED = {1, 132}
"""CONNACK codes for "unsupported protocol version" (MQTT 3.1.1 and 5)."""
_AUTH_REFUSED = {4, 5, 134, 135}
_dropped = RateLimitedLog(log, "MQTT: %d more commands refused in the last minute (queue full)")
COMMAND_QUEUE = 100
"""Commands waiting for the command thread; one more is answered busy. A waiting command holds
at most 16 KiB (see :mod:`gateway.telemetry.mqtt.answers`), so a flood costs under 2 MB."""


@dataclass(frozen=True, slots=True)
class MqttView:
    """What the publisher reads from the daemon, each time it publishes."""

    uptime: float
    cameras: list[CameraStatus]
    storage: StorageUsage | None
    clock_synchronized: bool | None
    seal: dict[str, Any] | None = None
    """Heads of the audit journal and of each camera's seal chain (see ``P/seal``)."""


class MqttPublisher:
    def __init__(
        self,
        config: MqttConfig,
        *,
        site_id: str,
        view: Callable[[], MqttView],
        events: EventQueue,
        on_command: CommandHandler,
        on_snapshot: SnapshotHandler | None = None,
        on_relearn: CommandHandler | None = None,
    ) -> None:
        self.config = config
        self.site_id = site_id
        self.prefix = config.prefix(site_id)
        self._view = view
        self._events = events
        self._on_snapshot = on_snapshot
        self._on_relearn = on_relearn
        self._answers = CommandAnswers(
            self,
            events=events,
            on_forward=on_command,
            on_snapshot=on_snapshot,
            on_relearn=on_relearn,
        )
        self._commands: queue.Queue[Request] = queue.Queue(maxsize=COMMAND_QUEUE)
        self._max_packet: int | None = None
        """The broker's Maximum Packet Size (MQTT 5 CONNACK), None if it sets none."""
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._republish = threading.Event()
        self._downgrade = threading.Event()
        self._protocol = paho.MQTTv5
        self._client: paho.Client | None = None
        self._last: dict[str, tuple[Any, ...]] = {}
        self._last_seal: dict[str, Any] | None = None
        self._last_sent: dict[str, float] = {}
        self._last_problem: str | None = None
        self._thread = threading.Thread(target=self._run, name="gateway:mqtt", daemon=True)
        self._command_thread = threading.Thread(
            target=self._serve_commands, name="gateway:mqtt-cmd", daemon=True
        )

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self._command_thread.is_alive()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def client(self) -> paho.Client | None:
        return self._client

    @property
    def max_packet(self) -> int | None:
        """The broker's Maximum Packet Size (MQTT 5 CONNACK), None if it sets none."""
        return self._max_packet

    @property
    def protocol(self) -> str:
        return "MQTT 5" if self._protocol == paho.MQTTv5 else "MQTT 3.1.1"

    def topic(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._client = self._connect()
        self._thread.start()
        self._command_thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Publish ``offline`` (retained) and disconnect cleanly."""
        self._stop.set()
        self._thread.join(timeout)
        self._command_thread.join(timeout)
        client = self._client
        if client is None:
            return
        if self.connected:
            self._publish_events()  # e.g. the forward sessions stopped by the shutdown
            info = client.publish(self.topic("availability"), "offline", qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout)
            client.disconnect()
        client.loop_stop()

    def _connect(self) -> paho.Client:
        config = self.config
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=config.effective_client_id(self.site_id),
            protocol=self._protocol,
        )
        client.will_set(self.topic("availability"), "offline", qos=1, retain=True)
        if config.username is not None or config.password is not None:
            password = config.password.get_secret_value() if config.password else None
            client.username_pw_set(config.username or "", password)
        if config.tls is not None:
            tls = config.tls
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
            )
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_queued_messages_set(1000)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_connect_fail = self._on_connect_fail
        client.connect_async(config.host, config.effective_port, keepalive=round(config.keepalive))
        client.loop_start()
        return client

    # -- paho callbacks (paho's network thread) ---------------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        _userdata: Any,
        _flags: Any,
        reason: ReasonCode,
        properties: Any,
    ) -> None:
        if reason.is_failure:
            code = reason.value
            if self._protocol == paho.MQTTv5 and code in _PROTOCOL_REFUSED:
                self._downgrade.set()
                return
            what = "refused our credentials" if code in _AUTH_REFUSED else "refused the connection"
            self._problem(f"the MQTT broker {what} ({reason})")
            return
        limit = getattr(properties, "MaximumPacketSize", None)
        self._max_packet = limit if isinstance(limit, int) and limit > 0 else None
        self._connected.set()
        self._last_problem = None
        log.info(
            "MQTT: connected to %s:%d (%s)",
            self.config.host,
            self.config.effective_port,
            self.protocol,
        )
        if isinstance(sock := client.socket(), socket.socket):
            # An answer is a small packet right after the command's PUBACK: without this, it
            # waits for the broker's delayed ACK of the PUBACK, ~40 ms each time.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.publish(self.topic("availability"), "online", qos=1, retain=True)
        client.subscribe(self.topic("cameras", "+", "forward", "set"), qos=1)
        if self._on_snapshot is not None:
            client.subscribe(self.topic("cameras", "+", "snapshot", "set"), qos=1)
        if self._on_relearn is not None:
            client.subscribe(self.topic("cameras", "+", "analysis", "relearn", "set"), qos=1)
        self._republish.set()

    def _on_disconnect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if self._connected.is_set() and not self._stop.is_set():
            log.warning("MQTT: disconnected from the broker (%s); reconnecting", reason)
        self._connected.clear()

    def _on_connect_fail(self, _client: paho.Client, _userdata: Any) -> None:
        self._problem(
            f"cannot reach the MQTT broker at {self.config.host}:{self.config.effective_port}"
        )

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        request = self._answers.read(message)
        if request is None:
            return
        try:
            self._commands.put_nowait(request)
        except queue.Full:
            _dropped.log("MQTT: too many commands waiting; one for %s refused", request.camera)
            self._answers.busy(request)

    def _problem(self, text: str) -> None:
        if text != self._last_problem:
            log.warning("MQTT: %s; retrying", text)
            self._last_problem = text

    # -- our thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._downgrade.is_set():
                self._downgrade.clear()
                self._switch_to_311()
            if self.connected:
                self._publish_status()
                self._publish_events()
            self._events.wait(0.5)

    def _serve_commands(self) -> None:
        """Commands in the order they came, on a thread of their own: a command that waits
        (a stop for a pusher that is slow to close, a start waiting for the journal's fsync)
        never holds up the status and events published meanwhile."""
        while not self._stop.is_set():
            try:
                request = self._commands.get(timeout=0.5)
            except queue.Empty:
                continue
            self._answers.carry_out(request)

    def _switch_to_311(self) -> None:
        log.warning("MQTT: the broker does not speak MQTT 5; using MQTT 3.1.1")
        old = self._client
        if old is not None:
            old.loop_stop()
            old.disconnect()
        self._protocol = paho.MQTTv311
        self._client = self._connect()

    def _publish(self, topic: str, payload: Mapping[str, Any], *, retain: bool) -> bool:
        client = self._client
        if client is None:
            return False
        info = client.publish(topic, json.dumps(payload), qos=1, retain=retain)
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def _publish_status(self) -> None:
        everything = self._republish.is_set()
        self._republish.clear()
        view = self._view()
        now = time.monotonic()
        interval = self.config.status_interval
        for status in view.cameras:
            payload = camera_payload(status)
            key = f"camera:{status.id}"
            due = now - self._last_sent.get(key, 0.0) >= interval
            changed = self._last.get(key) != significant(payload)
            topic = self.topic("cameras", status.id, "status")
            if (everything or due or changed) and self._publish(topic, payload, retain=True):
                self._last[key] = significant(payload)
                self._last_sent[key] = now
        state = state_payload(
            site_id=self.site_id,
            uptime=view.uptime,
            cameras=view.cameras,
            storage=view.storage,
            clock_synchronized=view.clock_synchronized,
        )
        marker = (state["cameras"]["online"], state["storage"] and state["storage"]["error"])
        due = now - self._last_sent.get("state", 0.0) >= interval
        changed = self._last.get("state") != marker
        if (everything or due or changed) and self._publish(
            self.topic("state"), state, retain=True
        ):
            self._last["state"] = marker
            self._last_sent["state"] = now
        seal = view.seal
        if (
            seal is not None
            and (everything or self._last_seal != seal)
            and self._publish(self.topic("seal"), seal, retain=True)
        ):
            self._last_seal = seal

    def _publish_events(self) -> None:
        while (event := self._events.peek()) is not None:
            if not self._publish(self.topic("events"), event_payload(event), retain=False):
                return  # kept for the next connection
            self._events.pop()
