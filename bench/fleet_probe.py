"""What the fleet simulation looks at: the operator's MQTT view, Prometheus queries, the ACL.

The operator is a real MQTT 5 client with the ``csu-marseille`` certificate, subscribed to the
whole fleet (the broker delivers only what the ACL lets it read). Round trips are forward
``stop`` commands with a response topic under the convention of ``deploy/mosquitto/centre.acl``
(``camera-gateway/<site>/response/<requester>/...``) and correlation data.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pki import Identity, Pki

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "camera-gateway"


def client(pki: Pki, identity: Identity, port: int, *, v5: bool = True) -> paho.Client:
    c = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=identity.name,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
    )
    c.tls_set(ca_certs=str(pki.ca), certfile=str(identity.cert), keyfile=str(identity.key))
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    return c


class Observer:
    """The operator's connection: availability, message counts per site, answers."""

    def __init__(self, pki: Pki, identity: Identity, port: int) -> None:
        self.name = identity.name
        self._lock = threading.Lock()
        self.availability: dict[str, tuple[str, float]] = {}
        self._counting = False
        self._counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self.kinds: dict[str, int] = defaultdict(int)
        """Messages counted by topic, the site and camera left out (``cameras/+/status``)."""
        self._answers: dict[bytes, tuple[float, dict[str, Any]]] = {}
        self.markers: list[tuple[str, str]] = []
        """(topic, publisher) of the ACL sweep's markers the operator received."""
        self._client = client(pki, identity, port)
        self._client.on_message = self._on_message
        self._client.subscribe(f"{PREFIX}/#", qos=1)
        self._client.subscribe(f"{PREFIX}/+/response/{self.name}/#", qos=1)

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        now = time.monotonic()
        parts = message.topic.split("/")
        site = parts[1] if len(parts) > 1 else "?"
        with self._lock:
            if self._counting:
                entry = self._counts[site]
                entry[0] += 1
                entry[1] += len(message.topic) + len(message.payload)
                kind = parts[2:]
                if kind[:1] == ["cameras"] and len(kind) > 1:
                    kind[1] = "+"
                self.kinds["/".join(kind)] += 1
            if parts[-1] == "availability":
                self.availability[site] = (message.payload.decode(errors="replace"), now)
            elif b"fleet-marker" in message.payload:
                with contextlib.suppress(ValueError, AttributeError):
                    who = str(json.loads(message.payload).get("fleet-marker"))
                    self.markers.append((message.topic, who))
            elif len(parts) > 3 and parts[2] == "response":
                props = getattr(message, "properties", None)
                data = getattr(props, "CorrelationData", None) if props else None
                if data is not None:
                    self._answers[bytes(data)] = (now, json.loads(message.payload))

    def count(self, on: bool) -> dict[str, tuple[int, int]]:
        """Start counting (``True``) or stop and return (messages, bytes) per site."""
        with self._lock:
            self._counting = on
            if on:
                self._counts.clear()
                self.kinds.clear()
            return {s: (v[0], v[1]) for s, v in self._counts.items()}

    def wait_online(self, sites: list[str], timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                up = [s for s in sites if self.availability.get(s, ("", 0))[0] == "online"]
            if len(up) == len(sites):
                return up
            time.sleep(0.5)
        raise RuntimeError(f"only {len(up)} of {len(sites)} boxes online after {timeout:.0f} s")

    def wait_offline(self, sites: list[str], since: float, timeout: float) -> dict[str, float]:
        """Seconds from ``since`` to each site's ``offline`` (missing: not seen in time)."""
        deadline = time.monotonic() + timeout
        seen: dict[str, float] = {}
        while time.monotonic() < deadline and len(seen) < len(sites):
            with self._lock:
                for s in sites:
                    state, at = self.availability.get(s, ("", 0.0))
                    if state == "offline" and at >= since:
                        seen[s] = round(at - since, 2)
            time.sleep(0.2)
        return seen

    def ask(self, site: str, payload: dict[str, Any], token: bytes) -> None:
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = f"{PREFIX}/{site}/response/{self.name}/fleet"
        props.CorrelationData = token
        topic = f"{PREFIX}/{site}/cameras/cam1/forward/set"
        self._client.publish(topic, json.dumps(payload), qos=1, properties=props)

    def answer(self, token: bytes) -> tuple[float, dict[str, Any]] | None:
        with self._lock:
            return self._answers.get(token)

    def publish(self, topic: str, payload: str) -> None:
        self._client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@dataclass
class Trips:
    times: list[float] = field(default_factory=list)
    unanswered: int = 0
    answers: dict[str, int] = field(default_factory=dict)


def round_trips(observer: Observer, sites: list[str], count: int) -> Trips:
    """``count`` forward stops, one at a time, to the sites in turn; milliseconds each."""
    trips = Trips()
    for n in range(count):
        token = f"fleet-{n}".encode()
        sent = time.monotonic()
        observer.ask(sites[n % len(sites)], {"action": "stop", "requested_by": "fleet-sim"}, token)
        deadline = sent + 5.0
        got = None
        while time.monotonic() < deadline and (got := observer.answer(token)) is None:
            time.sleep(0.002)
        if got is None:
            trips.unanswered += 1
            continue
        trips.times.append(round(1000.0 * (got[0] - sent), 1))
        key = f"ok={got[1].get('ok')}: {got[1].get('message', '')}"[:120]
        trips.answers[key] = trips.answers.get(key, 0) + 1
    return trips


def promql(port: int, query: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=20) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"query {query!r} failed: {body}")
    return list(body["data"]["result"])


VARIABLES = {
    r"\$\{?__rate_interval\}?": "1m",
    r"\$\{?__interval\}?": "15s",
    r"\$\{?__range\}?": "5m",
    r"\$\{?site(:\w+)?\}?": ".*",
    r"\$\{?city(:\w+)?\}?": ".*",
}


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            walk(panel.get("panels", []))
            for target in panel.get("targets", []):
                if target.get("expr"):
                    found.append((panel.get("title", "?"), target["expr"]))

    walk(dashboard.get("panels", []))
    return found


def dashboard_check(port: int, sites: list[str]) -> dict[str, Any]:
    """Every panel query of every dashboard, and the sites each returns no series for."""
    out: dict[str, Any] = {"queries": 0, "complete": 0, "missing": {}, "fleet_wide": []}
    for path in sorted((ROOT / "deploy" / "grafana").glob("**/*.json")):
        for title, expr in expressions(json.loads(path.read_text())):
            query = expr
            for pattern, value in VARIABLES.items():
                query = re.sub(pattern, value, query)
            out["queries"] += 1
            result = promql(port, query)
            labelled = {r["metric"].get("site") for r in result}
            if labelled == {None} and result:
                out["fleet_wide"].append(title)
                out["complete"] += 1
                continue
            missing = sorted(set(sites) - labelled)
            if missing:
                out["missing"][f"{path.name}: {title}"] = len(missing)
            else:
                out["complete"] += 1
    return out


def acl_sweep(
    pki: Pki, port: int, sites: list[str], observer: Observer, landlord: Identity
) -> dict[str, Any]:
    """Every gateway stopped, each box's certificate tries to cross into the next site: write
    its events, command it; the landlord tries to command every box. Nothing may cross, while
    each box's writes to its own tree and the operator's commands get through."""
    boxes = {s: client(pki, pki.client(s), port) for s in sites}
    got: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
    for site, c in boxes.items():
        c.on_message = lambda _c, _u, m, site=site: got[site].append((m.topic, m.payload))
        c.subscribe(f"{PREFIX}/#", qos=1)
    time.sleep(2.0)
    retained = sum(len(v) for v in got.values())  # other sites' retained status: none readable
    got.clear()
    observer.markers.clear()
    for i, (site, c) in enumerate(boxes.items()):
        other = sites[(i + 1) % len(sites)]
        for target in (other, site):
            c.publish(f"{PREFIX}/{target}/events", json.dumps({"fleet-marker": site}), qos=1)
        c.publish(f"{PREFIX}/{other}/cameras/cam1/forward/set", '{"from": "box"}', qos=1)
    landlord_client = client(pki, landlord, port)
    for site in sites:
        observer.publish(f"{PREFIX}/{site}/cameras/cam1/forward/set", '{"from": "operator"}')
        landlord_client.publish(f"{PREFIX}/{site}/cameras/cam1/forward/set", '{"from": "landlord"}')
    time.sleep(3.0)
    for c in [*boxes.values(), landlord_client]:
        c.loop_stop()
        c.disconnect()
    own = sum(1 for topic, who in observer.markers if topic.split("/")[1] == who)
    crossed = sum(1 for topic, who in observer.markers if topic.split("/")[1] != who)
    received = [(s, t, p) for s, items in got.items() for t, p in items]
    operator_commands = sum(1 for s, t, p in received if t.split("/")[1] == s and b"operator" in p)
    foreign = sum(1 for s, t, p in received if t.split("/")[1] != s or b"operator" not in p)
    return {
        "boxes": len(sites),
        "own_writes_delivered": own,
        "foreign_writes_delivered": crossed,
        "operator_commands_received": operator_commands,
        "foreign_messages_received_by_boxes": foreign,
        "retained_of_other_sites_received": retained,
        "isolated": own == len(sites)
        and crossed == 0
        and operator_commands == len(sites)
        and foreign == 0
        and retained == 0,
    }
