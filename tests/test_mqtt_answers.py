"""Every MQTT command gets an answer, against a real mosquitto and the real daemon: on the
requester's MQTT 5 response topic with its correlation data, and on ``.../result`` (with the
request's ``id``) for MQTT 3.1.1 clients; refusals name the problem, a response topic the box
must not publish to is refused, and a flood of commands is answered busy, not queued without
bound."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from helpers import Broker, GatewayProcess, StartGateway, free_port, wait_until, write_config
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.telemetry.mqtt.answers import BAD_ID, BUSY, response_topic_problem

P = "camera-gateway/res-0042"
INBOX = f"{P}/response/centre/inbox"
ROUND_TRIPS = 50


class Requester:
    """A client of the box's commands (paho): it publishes commands and records every message
    on the box's result topics, its own inbox and the events, with when each arrived."""

    def __init__(
        self, port: int, *, protocol: MQTTProtocolVersion = paho.MQTTv5, nodelay: bool = False
    ) -> None:
        self.nodelay = nodelay
        self.messages: list[tuple[str, dict[str, Any], bytes | None, float]] = []
        self.raw: list[tuple[str, bytes]] = []
        self._arrived = threading.Condition()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
        self._client.username_pw_set("watcher", "w-secret")
        self._client.on_message = self._on_message
        self._subscribed = threading.Event()
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *_args: self._subscribed.set()
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        assert self._subscribed.wait(10), "the requester could not subscribe"

    def _on_connect(self, client: paho.Client, *_args: Any) -> None:
        sock = client.socket()
        if self.nodelay and isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        topics = [f"{P}/#", "elsewhere/#"]
        client.subscribe([(topic, 1) for topic in topics])

    def _on_message(self, _client: paho.Client, _userdata: Any, message: Any) -> None:
        arrived = time.monotonic()
        self.raw.append((message.topic, bytes(message.payload)))
        if message.topic.endswith("/result") or "/response/" in message.topic:
            correlation = getattr(message.properties, "CorrelationData", None)
            with self._arrived:
                self.messages.append(
                    (message.topic, json.loads(message.payload), correlation, arrived)
                )
                self._arrived.notify_all()

    def ask(
        self,
        topic: str,
        payload: str | bytes,
        *,
        response_topic: str | None = None,
        correlation: bytes | None = None,
    ) -> float:
        """Publish a command; when it was sent (monotonic)."""
        properties = None
        if response_topic is not None or correlation is not None:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if response_topic is not None:
                properties.ResponseTopic = response_topic
            if correlation is not None:
                properties.CorrelationData = correlation
        sent = time.monotonic()
        self._client.publish(f"{P}/{topic}", payload, qos=1, properties=properties)
        return sent

    def answers(self, topic: str, correlation: bytes | None = None) -> list[dict[str, Any]]:
        with self._arrived:
            return [
                a
                for t, a, c, _ in self.messages
                if t == topic and (correlation is None or c == correlation)
            ]

    def wait(
        self, topic: str, correlation: bytes, timeout: float = 10
    ) -> tuple[dict[str, Any], float]:
        """The answer carrying ``correlation`` on ``topic``, and when it arrived."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for t, answer, c, arrived in self.messages:
                    if t == topic and c == correlation:
                        return answer, arrived
                left = deadline - time.monotonic()
                assert left > 0, f"no answer on {topic} with correlation {correlation!r}"
                self._arrived.wait(left)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@pytest.fixture
def requester(broker: Broker) -> Iterator[Requester]:
    client = Requester(broker.port)
    yield client
    client.close()


@pytest.fixture
def quick_broker(tmp_path: Path) -> Iterator[int]:
    """mosquitto as the ``broker`` fixture's (same users), sending without Nagle's delay
    (``set_tcp_nodelay true``): without it, each hop of a small answer may wait for the
    previous packet's delayed ACK (~40 ms), which would hide the box's own time. Its port."""
    directory = tmp_path / "quick-broker"
    directory.mkdir()
    passwords = directory / "passwords"
    passwords.write_text("")
    for user, password in {"gateway": "gw-secret", "watcher": "w-secret"}.items():
        subprocess.run(
            ["mosquitto_passwd", "-b", str(passwords), user, password],
            check=True,
            capture_output=True,
        )
    port = free_port()
    config = directory / "mosquitto.conf"
    lines = [
        *(["user root"] if os.geteuid() == 0 else []),
        "persistence false",
        "allow_anonymous false",
        f"password_file {passwords}",
        "set_tcp_nodelay true",
        f"listener {port} 127.0.0.1",
    ]
    config.write_text("\n".join(lines) + "\n")
    with (directory / "mosquitto.log").open("ab") as log:
        process = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=log, stderr=log)
    try:
        wait_until(lambda: _listening(port), 10, "mosquitto to listen")
        yield port
    finally:
        process.terminate()
        process.wait(5)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _config(tmp_path: Path, port: int) -> Path:
    cameras = [
        {"id": "hall", "url": "sim://hall?width=320&height=240&fps=10&gop=5"},
        {"id": "yard", "url": "sim://yard?width=320&height=240&fps=10&gop=5"},
    ]
    return write_config(
        tmp_path / "gw.yaml",
        tmp_path / "rec",
        cameras,
        site_id="res-0042",
        mqtt={
            "host": "127.0.0.1",
            "port": port,
            "username": "gateway",
            "password": "gw-secret",
            "keepalive": "5s",
            "status_interval": "2s",
        },
        # Nothing listens there: a start is accepted, its pusher retries in the background.
        uplink={"url": f"rtsp://127.0.0.1:{free_port()}/{{site_id}}/{{camera_id}}"},
    )


def _ready(gw: GatewayProcess, requester: Requester) -> None:
    """The box is connected and each camera has a keyframe to show."""

    def analysed() -> bool:
        status = gw.status()
        return all(int((c.get("tamper") or {}).get("keyframes", 0)) >= 1 for c in status.values())

    wait_until(lambda: (f"{P}/availability", b"online") in requester.raw, 15, "the box online")
    wait_until(analysed, 20, "a keyframe of each camera")


START = {"action": "start", "duration": "10m", "requested_by": "CSU, op 7", "reason": "call 4512"}
STOP = {"action": "stop", "requested_by": "CSU, op 7"}
RELEARN = {"requested_by": "installer", "reason": "re-aimed"}
SNAPSHOT = {"requested_by": "CSU, op 7", "reason": "call 4512"}


def _percentiles(delays: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(delays, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


def test_mqtt5_commands_are_answered_on_the_response_topic_with_their_correlation_data(
    tmp_path: Path, quick_broker: int, gateway: StartGateway
) -> None:
    requester = Requester(quick_broker, nodelay=True)
    try:
        _check_mqtt5_answers(tmp_path, gateway(_config(tmp_path, quick_broker)), requester)
    finally:
        requester.close()


def _check_mqtt5_answers(tmp_path: Path, gw: GatewayProcess, requester: Requester) -> None:
    _ready(gw, requester)
    forward_result = f"{P}/cameras/hall/forward/result"

    requester.ask(
        "cameras/hall/forward/set",
        json.dumps(START),
        response_topic=INBOX,
        correlation=b"\x00start",
    )
    started, _ = requester.wait(INBOX, b"\x00start")
    assert started["ok"] and started["command"] == "forward" and started["camera"] == "hall"
    assert started["message"] == "forwarding started" and started["state"] == "active"
    assert len(started["session"]) == 12 and started["until"].endswith("Z")
    assert started["at"].endswith("Z") and "id" not in started
    assert "reason" not in started and "target" not in started
    # The same answer on .../result, for the centre's log, with the correlation data too.
    (logged,) = requester.answers(forward_result, b"\x00start")
    assert logged == started
    entry = gw.forward_journal()[0]
    assert entry["session"] == started["session"] and entry["origin"] == "mqtt"

    requester.ask(
        "cameras/hall/forward/set", json.dumps(STOP), response_topic=INBOX, correlation=b"stop"
    )
    stopped, _ = requester.wait(INBOX, b"stop")
    assert stopped["ok"] and stopped["state"] == "stopped" and stopped["until"] is None
    assert stopped["session"] == started["session"] and stopped["stop_reason"] == "stopped"

    requester.ask(
        "cameras/hall/analysis/relearn/set",
        json.dumps(RELEARN),
        response_topic=INBOX,
        correlation=b"relearn",
    )
    relearned, _ = requester.wait(INBOX, b"relearn")
    assert relearned["ok"] and relearned["command"] == "relearn"
    assert relearned["message"] == "camera hall: the watch learns the view again"
    assert requester.answers(f"{P}/cameras/hall/analysis/relearn/result", b"relearn")

    requester.ask(
        "cameras/hall/snapshot/set", json.dumps(SNAPSHOT), response_topic=INBOX, correlation=b"snap"
    )
    snapped, _ = requester.wait(INBOX, b"snap")
    assert snapped["ok"] and snapped["command"] == "snapshot" and len(snapped["sha256"]) == 64
    assert snapped["bytes"] > 0 and snapped["requested_by"] == "CSU, op 7"
    (picture,) = [p for t, p in requester.raw if t == f"{P}/cameras/hall/snapshot"]
    assert len(picture) == snapped["bytes"] and picture[:2] == b"\xff\xd8", (
        "the JPEG, not on the inbox"
    )

    # Round trips, one command at a time, each kind ROUND_TRIPS times.
    figures: dict[str, tuple[float, float]] = {}
    commands = {
        "forward": ("cameras/yard/forward/set", [START, STOP]),
        "relearn": ("cameras/yard/analysis/relearn/set", [RELEARN]),
        "snapshot": ("cameras/yard/snapshot/set", [SNAPSHOT]),
    }
    for kind, (topic, payloads) in commands.items():
        delays = []
        for n in range(ROUND_TRIPS):
            correlation = f"{kind}-{n}".encode()
            payload = payloads[n % len(payloads)]
            sent = requester.ask(
                topic, json.dumps(payload), response_topic=INBOX, correlation=correlation
            )
            answer, arrived = requester.wait(INBOX, correlation)
            assert answer["ok"], answer
            delays.append(arrived - sent)
        figures[kind] = _percentiles(delays)
    report = ", ".join(
        f"{k} p50 {p50:.1f} ms p99 {p99:.1f} ms" for k, (p50, p99) in figures.items()
    )
    print(f"\nround trips over {ROUND_TRIPS} commands each: {report}")
    (tmp_path.parent / "mqtt-answers-round-trips.txt").write_text(report + "\n")
    # Each answer waiting for a delayed ACK (no TCP_NODELAY on the box) would put it over 40 ms.
    assert all(p50 < 35 and p99 < 1000 for p50, p99 in figures.values()), report
    published = b"".join(p for t, p in requester.raw if not t.endswith("/set"))
    assert b"gw-secret" not in published and b"call 4512" not in published
    assert gw.stop() == 0


def test_mqtt311_clients_get_answers_on_result_with_their_id(
    tmp_path: Path, broker: Broker, gateway: StartGateway, requester: Requester
) -> None:
    old = Requester(broker.port, protocol=paho.MQTTv311)
    try:
        gw = gateway(_config(tmp_path, broker.port))
        _ready(gw, requester)
        old.ask("cameras/hall/analysis/relearn/set", json.dumps({**RELEARN, "id": "req-7"}))
        old.ask("cameras/hall/snapshot/set", json.dumps({**SNAPSHOT, "id": 42}))
        old.ask("cameras/hall/forward/set", json.dumps({**STOP, "id": "req-8"}))
        old.ask("cameras/hall/forward/set", json.dumps({**STOP, "id": ["not", "an", "id"]}))
        relearn = f"{P}/cameras/hall/analysis/relearn/result"
        snapshot = f"{P}/cameras/hall/snapshot/result"
        forward = f"{P}/cameras/hall/forward/result"
        wait_until(lambda: len(old.answers(forward)) >= 2, 10, "the forward answers")
        wait_until(lambda: old.answers(relearn) and old.answers(snapshot), 10, "the answers")
        (relearned,) = old.answers(relearn)
        assert relearned["ok"] and relearned["id"] == "req-7" and relearned["camera"] == "hall"
        (snapped,) = old.answers(snapshot)
        assert snapped["ok"] and snapped["id"] == 42 and len(snapped["sha256"]) == 64
        refused, bad = old.answers(forward)
        assert not refused["ok"] and refused["id"] == "req-8"
        assert "no forward session is active for camera hall" in refused["message"]
        assert refused["session"] is None and refused["state"] is None
        assert not bad["ok"] and bad["message"] == BAD_ID and "id" not in bad
        assert [e["event"] for e in gw.audit("analysis_relearned")] == ["analysis_relearned"]
    finally:
        old.close()


def _rejections(requester: Requester) -> list[dict[str, Any]]:
    events = [json.loads(p) for t, p in requester.raw if t == f"{P}/events"]
    return [e for e in events if e["event"] == "command_rejected"]


FORWARD, RELEARN_SET, SNAPSHOT_SET = (
    "hall/forward/set",
    "hall/analysis/relearn/set",
    "hall/snapshot/set",
)
WILDCARD = f"{P}/response/#"
LONG = INBOX + "/x" * 130
BAD: list[tuple[str, str | bytes, str | None, bytes | None, str]] = [
    # topic under P/cameras/, payload, response topic, correlation data, the answer's message
    (FORWARD, "not json", None, None, "the payload is not a JSON object"),
    ("nope/forward/set", json.dumps(START), None, None, "unknown camera 'nope'"),
    (FORWARD, json.dumps({**START, "action": "dance"}), None, None, "action"),
    (FORWARD, json.dumps({**START, "duration": "9h"}), None, None, "exceeds uplink.max_session"),
    (RELEARN_SET, json.dumps({"requested_by": "x"}), None, None, "a relearn needs a reason"),
    ("nope/snapshot/set", json.dumps(SNAPSHOT), None, None, "unknown camera 'nope'"),
    (FORWARD, json.dumps(START), WILDCARD, None, "holds a wildcard"),
    (FORWARD, json.dumps(START), "elsewhere/inbox", None, f"is not under {P}/response/"),
    (FORWARD, json.dumps(START), f"{P}/cameras/hall/status", None, "is not under"),
    (FORWARD, json.dumps(START), LONG, None, "at most 256"),
    (SNAPSHOT_SET, json.dumps(SNAPSHOT), INBOX, b"c" * 65, "correlation data is 65 bytes"),
    (FORWARD, b" " * 20_000, None, None, "the payload is 20000 bytes; a command is at most"),
]


def test_bad_commands_get_answers_naming_the_problem_and_the_daemon_goes_on(
    tmp_path: Path, broker: Broker, gateway: StartGateway, requester: Requester
) -> None:
    gw = gateway(_config(tmp_path, broker.port))
    _ready(gw, requester)

    def correlation_of(n: int) -> bytes:
        return BAD[n][3] or f"bad-{n}".encode()

    def result_of(topic: str) -> str:
        return f"{P}/cameras/{topic.rsplit('/', 1)[0]}/result"

    for n, (topic, payload, response_topic, _, _) in enumerate(BAD):
        correlation = correlation_of(n)
        requester.ask(
            f"cameras/{topic}", payload, response_topic=response_topic, correlation=correlation
        )
    results = {result_of(topic) for topic, *_ in BAD}

    def answered() -> int:
        return sum(len(requester.answers(topic)) for topic in results)

    wait_until(lambda: answered() >= len(BAD), 15, "an answer to every bad command")
    for n, (topic, *_, expected) in enumerate(BAD):
        correlation = correlation_of(n)
        kept = correlation if len(correlation) <= 64 else None
        found = requester.answers(result_of(topic), kept)
        matching = [a for a in found if expected in a["message"]]
        assert matching and not matching[0]["ok"], (expected, found)
    # Refused response topics are never published to; nothing was started nor taken.
    assert not [t for t, _ in requester.raw if t.startswith("elsewhere/")]
    assert not [t for t, _ in requester.raw if t.startswith(f"{P}/response/") and t != INBOX]
    assert not requester.answers(INBOX), "a refused correlation data gets no inbox answer"
    assert gw.forward_journal() == [] and gw.audit("snapshot_taken") == []
    wait_until(lambda: len(_rejections(requester)) >= len(BAD), 10, "a rejection event each")

    # A flood: the queue takes 100, the others are answered busy; every one gets an answer.
    flood = 300
    for n in range(flood):
        requester.ask(
            "cameras/yard/snapshot/set",
            json.dumps(SNAPSHOT),
            response_topic=INBOX,
            correlation=f"flood-{n}".encode(),
        )

    def flooded() -> list[dict[str, Any]]:
        return [a for a in requester.answers(INBOX) if a["camera"] == "yard"]

    wait_until(lambda: len(flooded()) >= flood, 60, "every flooded command answered")
    busy = [a for a in flooded() if a["message"] == BUSY]
    taken = [a for a in flooded() if a["ok"]]
    assert busy and all(not a["ok"] for a in busy)
    assert len(taken) + len(busy) == flood == len(flooded())
    assert len(gw.audit("snapshot_taken")) == len(taken)
    print(f"\nflood of {flood} snapshot requests: {len(taken)} taken, {len(busy)} answered busy")

    # The daemon goes on: it answers and publishes its status.
    seen = len(requester.raw)
    requester.ask(
        "cameras/hall/forward/set", json.dumps(STOP), response_topic=INBOX, correlation=b"after"
    )
    after, _ = requester.wait(INBOX, b"after")
    assert "no forward session is active" in after["message"]

    def status_again() -> bool:
        return any(t == f"{P}/cameras/hall/status" for t, _ in requester.raw[seen:])

    wait_until(status_again, 10, "the status published again")
    assert gw.proc is not None and gw.proc.poll() is None
    assert b"gw-secret" not in b"".join(p for _, p in requester.raw)
    assert gw.stop() == 0


@pytest.mark.parametrize(
    ("topic", "problem"),
    [
        ("", "the response topic is empty"),
        (f"{P}/response/centre/+", "holds a wildcard (+ or #)"),
        (f"{P}/response/centre/#", "holds a wildcard (+ or #)"),
        (f"{P}/response/", f"is not under {P}/response/"),
        (f"{P}/responses/x", f"is not under {P}/response/"),
        (f"{P}x/response/x", f"is not under {P}/response/"),
        ("camera-gateway/res-0043/response/x", f"is not under {P}/response/"),
        (f"{P}/response/a\nb", "contains U+000A (a control character)"),
        (f"{P}/response/" + "é" * 120, "the response topic is 273 bytes; at most 256"),
        (f"{P}/response/centre/42", None),
    ],
)
def test_a_response_topic_is_accepted_only_under_the_box_response_tree(
    topic: str, problem: str | None
) -> None:
    found = response_topic_problem(topic, P)
    assert found == problem if problem is None else (found is not None and problem in found)
