"""The fleet's brokers, as deployed (``deploy/mosquitto/centre.*``, ``box-bridge.*``), run as
real mosquitto processes with a real openssl PKI: who may write and read what, by certificate;
the real daemon reporting over TLS with its own certificate; the bridged box keeping its
messages through an uplink outage.

Longer than 400 lines: one fixture set (the PKI, the centre broker, TLS clients) serves every
rule of the ACL, each tested from both sides, and the two layouts; split in two files, each
would repeat the fixtures.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from helpers import ROOT, StartGateway, free_port, wait_until, write_config
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

sys.path.insert(0, str(ROOT / "tests" / "support"))
from deployed import fill
from pki import Identity, Pki

DEPLOY = ROOT / "deploy" / "mosquitto"
SITE, OTHER = "res-0042", "res-0043"
OPERATOR, OPERATOR_2, LANDLORD = "csu-marseille", "csu-aix", "landlord-monitoring"
P, Q = f"camera-gateway/{SITE}", f"camera-gateway/{OTHER}"
NOT_AUTHORIZED = 135
COMMANDS = ("forward/set", "snapshot/set", "analysis/relearn/set")


def render(source: Path, replacements: dict[str, str]) -> str:
    """A deployed file with test paths and ports; each replaced text must still be there."""
    return fill(source.read_text(), replacements, name=source.name)


class Mosquitto:
    """mosquitto on a configuration text, logging to a file; stop() is SIGTERM (a clean stop,
    which saves its persistence file)."""

    def __init__(self, directory: Path, config: str, port: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.port = port
        self.config = directory / "mosquitto.conf"
        # As root, mosquitto would switch to its own user, who cannot read the test's files.
        self.config.write_text(config + ("user root\n" if os.geteuid() == 0 else ""))
        self.log_path = directory / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_from = 0

    def start(self) -> Mosquitto:
        self._log_from = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.log_path.touch()
        with (self.directory / "mosquitto.out").open("ab") as out:
            self.proc = subprocess.Popen(
                ["mosquitto", "-c", str(self.config)], stdout=out, stderr=out
            )
        wait_until(self._listening, 10, f"mosquitto on port {self.port}")
        return self

    def _listening(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log[-2000:]
        this_run = self.log_path.read_bytes()[self._log_from :].decode(errors="replace")
        return f"port {self.port}" in this_run

    @property
    def log(self) -> str:
        """The broker's log (``log_dest file``), then what it wrote to its standard output."""
        paths = (self.log_path, self.directory / "mosquitto.out")
        return "".join(p.read_text(errors="replace") for p in paths if p.exists())

    def reload(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def link(directory: Path, files: dict[str, Path]) -> Path:
    """``directory`` holding ``files`` under the names the deployed configuration uses."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, target in files.items():
        (directory / name).unlink(missing_ok=True)
        (directory / name).symlink_to(target)
    return directory


def centre_broker(directory: Path, pki: Pki, acl: str, port: int | None = None) -> Mosquitto:
    """The centre's broker on ``centre.conf`` as deployed, with this ACL text."""
    (directory / "etc").mkdir(parents=True, exist_ok=True)
    (directory / "etc" / "centre.acl").write_text(acl)
    server = pki.server()
    link(
        directory / "etc",
        {"fleet-ca.pem": pki.ca, "fleet-crl.pem": pki.crl, "broker.pem": server.cert,
         "broker.key": server.key},
    )  # fmt: skip
    (directory / "data").mkdir(exist_ok=True)
    port = port or free_port()
    config = render(
        DEPLOY / "centre.conf",
        {
            "/etc/mosquitto/camera-gateway/": f"{directory / 'etc'}/",
            "/var/lib/mosquitto/": f"{directory / 'data'}/",
            "listener 8883": f"listener {port} 127.0.0.1",
            "log_dest syslog": f"log_dest file {directory / 'mosquitto.log'}",
        },
    )
    return Mosquitto(directory, config, port)


class Client:
    """An MQTT 5 client over TLS (paho), with a certificate or none, recording what it gets."""

    def __init__(
        self,
        port: int,
        ca: Path,
        identity: Identity | None,
        *,
        subscribe: str | None = None,
        client_id: str = "",
        persistent: bool = False,
        username: str | None = None,
    ) -> None:
        self.messages: list[tuple[str, bytes, bool, Any]] = []
        self.acks: dict[int, int] = {}
        self.connected = threading.Event()
        self.failed = threading.Event()
        """Set when a connection attempt fails or a connection drops."""
        self.disconnects = 0
        self._subscribe = subscribe
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
        )
        cert, key = (str(identity.cert), str(identity.key)) if identity else (None, None)
        self._client.tls_set(ca_certs=str(ca), certfile=cert, keyfile=key)
        if username is not None:
            self._client.username_pw_set(username, "a password stolen from another box")
        self._client.reconnect_delay_set(1, 2)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_publish = self._on_publish
        self._client.on_connect_fail = lambda *_: self.failed.set()
        properties = None
        if persistent:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 3600
        self._client.connect_async(
            "127.0.0.1", port, keepalive=5, clean_start=not persistent, properties=properties
        )
        self._client.loop_start()

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            return
        if self._subscribe is not None:
            options = SubscribeOptions(qos=1, retainAsPublished=True)
            client.subscribe(self._subscribe, options=options)
        self.connected.set()

    def _on_disconnect(self, *_args: Any) -> None:
        self.connected.clear()
        self.disconnects += 1
        self.failed.set()

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        self.messages.append(
            (message.topic, bytes(message.payload), bool(message.retain), message.properties)
        )

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        self.acks[mid] = int(reason.value)

    def ready(self, timeout: float = 10.0) -> Client:
        assert self.connected.wait(timeout), "no CONNACK"
        time.sleep(0.3)  # the SUBACK
        return self

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> int:
        """Publish at QoS 1; the broker's PUBACK reason code (0 accepted, 135 not authorised)."""
        return self.publish_with(topic, payload, None, retain=retain)

    def publish_with(
        self,
        topic: str,
        payload: bytes | str,
        properties: Properties | None,
        *,
        retain: bool = False,
    ) -> int:
        info = self._client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        info.wait_for_publish(5)
        wait_until(lambda: info.mid in self.acks, 5, f"PUBACK for {topic}")
        return self.acks[info.mid]

    def topics(self) -> list[str]:
        return [topic for topic, *_ in self.messages]

    def got(self, topic: str) -> list[bytes]:
        return [payload for t, payload, *_ in self.messages if t == topic]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("fleet-pki"))


def _acl_with_test_identities() -> str:
    """The deployed ACL, with a second operator (its block copied from the first, as the file
    says to) and, for the tests only, an observer that reads everything."""
    acl = (DEPLOY / "centre.acl").read_text()
    start = acl.index(f"user {OPERATOR}\n")
    block = acl[start : acl.index("\n\n", start) + 1]
    second = block.replace(OPERATOR, OPERATOR_2)
    return f"{acl}\n{second}\nuser observer\ntopic read #\n"


@pytest.fixture(scope="module")
def centre(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = centre_broker(tmp_path_factory.mktemp("centre"), pki, _acl_with_test_identities())
    try:
        yield broker.start()
    finally:
        broker.stop()


Connect = Callable[..., Client]


@pytest.fixture
def connect(pki: Pki, centre: Mosquitto) -> Iterator[Connect]:
    """``connect(cn, subscribe=...)``: a client of the centre with the fleet CA's certificate
    for ``cn``; every one is closed at teardown."""
    made: list[Client] = []

    def start(cn: str, **kwargs: Any) -> Client:
        client = Client(centre.port, pki.ca, pki.client(cn), **kwargs)
        made.append(client)
        return client.ready()

    yield start
    for client in made:
        client.close()


BOX_TOPICS = (
    "availability", "state", "events", "seal", "bridge", "cameras/hall/status",
    "cameras/hall/snapshot", "cameras/hall/snapshot/result", "cameras/hall/forward/result",
    "cameras/hall/analysis/relearn/result", f"response/{OPERATOR}/7f3a",
)  # fmt: skip


def test_a_box_writes_its_whole_tree_and_nothing_under_another_site(connect: Connect) -> None:
    observer = connect("observer", subscribe="camera-gateway/#")
    box = connect(SITE)
    for tail in BOX_TOPICS:
        assert box.publish(f"{P}/{tail}", "from the box") == 0, tail
    # Another box, even naming this site as its user name (a stolen password), is its own CN.
    thief = connect(OTHER, username=SITE)
    for tail in BOX_TOPICS:
        assert thief.publish(f"{P}/{tail}", "forged") == NOT_AUTHORIZED, tail
    assert thief.publish(f"{Q}/events", "its own") == 0
    wait_until(lambda: f"{Q}/events" in observer.topics(), 5, "the other box's own event")
    assert sorted(observer.topics()) == sorted([f"{P}/{t}" for t in BOX_TOPICS] + [f"{Q}/events"])
    assert b"forged" not in [payload for _, payload, *_ in observer.messages]


def test_a_box_reads_only_its_own_commands(connect: Connect) -> None:
    box, other = connect(SITE, subscribe="camera-gateway/#"), connect(OTHER, subscribe="#")
    operator = connect(OPERATOR)
    other.publish(f"{Q}/cameras/hall/status", "{}", retain=False)
    box.publish(f"{P}/events", "{}")
    for target in (Q, P):
        for command in COMMANDS:
            assert operator.publish(f"{target}/cameras/hall/{command}", "{}") == 0
    wait_until(lambda: len(box.messages) == 3 and len(other.messages) == 3, 5, "the commands")
    time.sleep(0.5)
    assert box.topics() == [f"{P}/cameras/hall/{c}" for c in COMMANDS], "no other box's"
    assert other.topics() == [f"{Q}/cameras/hall/{c}" for c in COMMANDS], "no status, no event"


def test_neither_a_box_nor_the_landlord_can_send_commands(connect: Connect) -> None:
    box = connect(SITE, subscribe=f"{P}/cameras/+/#")
    other, landlord = connect(OTHER), connect(LANDLORD)
    for sender in (box, other, landlord):
        for command in COMMANDS:
            assert sender.publish(f"{P}/cameras/hall/{command}", "{}") == NOT_AUTHORIZED
    operator = connect(OPERATOR)
    operator.publish(f"{P}/cameras/hall/forward/set", "from the centre")
    wait_until(lambda: box.messages, 5, "the operator's command")
    assert box.got(f"{P}/cameras/hall/forward/set") == [b"from the centre"]
    assert len(box.messages) == 1


def test_the_landlord_reads_status_and_events_but_no_picture_nor_answer(connect: Connect) -> None:
    landlord = connect(LANDLORD, subscribe="#")
    operator = connect(OPERATOR, subscribe="camera-gateway/#")
    box = connect(SITE)
    for tail in BOX_TOPICS:
        box.publish(f"{P}/{tail}", b"\xff\xd8 JPEG" if tail.endswith("snapshot") else "{}")
    box.publish(f"{P}/cameras/hall/forward/set", "not even its own commands")
    wait_until(lambda: len(operator.messages) == len(BOX_TOPICS), 5, "the operator's copy")
    time.sleep(0.3)
    seen = ["availability", "state", "events", "seal", "bridge", "cameras/hall/status"]
    assert landlord.topics() == [f"{P}/{tail}" for tail in seen]
    assert operator.topics() == [f"{P}/{tail}" for tail in BOX_TOPICS]


def test_an_operator_reads_only_the_answers_addressed_to_it(connect: Connect) -> None:
    first = connect(OPERATOR, subscribe="camera-gateway/+/response/#")
    second = connect(OPERATOR_2, subscribe="camera-gateway/#")
    box = connect(SITE)
    box.publish(f"{P}/response/{OPERATOR}/1", "to the first")
    box.publish(f"{P}/response/{OPERATOR_2}/1", "to the second")
    box.publish(f"{P}/cameras/hall/forward/result", "for every operator")
    wait_until(lambda: len(second.messages) == 2 and first.messages, 5, "the answers")
    time.sleep(0.3)
    assert first.topics() == [f"{P}/response/{OPERATOR}/1"]
    assert second.topics() == [f"{P}/response/{OPERATOR_2}/1", f"{P}/cameras/hall/forward/result"]
    assert second.publish(f"{Q}/cameras/door/snapshot/set", "{}") == 0, "its block works too"


def test_a_box_cannot_take_over_another_box_session(connect: Connect) -> None:
    client_id = f"camera-gateway-{SITE}"  # the daemon's, which anyone can read in a config
    box = connect(SITE, subscribe=f"{P}/cameras/+/forward/set", client_id=client_id)
    intruder = connect(OTHER, client_id=client_id)  # the broker makes it res-0043: no takeover
    time.sleep(0.5)
    operator = connect(OPERATOR)
    operator.publish(f"{P}/cameras/hall/forward/set", "still delivered")
    wait_until(lambda: box.messages, 5, "the command")
    assert box.disconnects == 0 and intruder.connected.is_set()


def _connects(port: int, ca: Path, identity: Identity | None, **kwargs: Any) -> bool:
    client = Client(port, ca, identity, **kwargs)
    try:
        wait_until(lambda: client.connected.is_set() or client.failed.is_set(), 10, "an answer")
        time.sleep(0.2)  # with TLS 1.3 the broker's refusal comes after the client's handshake
        return client.connected.is_set()
    finally:
        client.close()


def test_clients_without_a_fleet_certificate_are_refused_at_connect(
    pki: Pki, centre: Mosquitto, tmp_path: Path
) -> None:
    foreign = Pki(tmp_path / "foreign", name="foreign")
    assert _connects(centre.port, pki.ca, pki.client(SITE)), "the control: a fleet certificate"
    assert not _connects(centre.port, pki.ca, None), "no certificate"
    assert not _connects(centre.port, pki.ca, None, username=SITE), "a password alone"
    assert not _connects(centre.port, pki.ca, foreign.client(SITE)), "another CA's certificate"


def test_a_revoked_box_is_refused_after_a_reload(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    stolen = pki.client(SITE)
    broker = centre_broker(tmp_path / "centre", pki, (DEPLOY / "centre.acl").read_text())
    try:
        broker.start()
        assert _connects(broker.port, pki.ca, stolen)
        pki.revoke(stolen)
        broker.reload()  # SIGHUP: systemctl reload mosquitto
        wait_until(lambda: "Reloading config" in broker.log, 5, "the reload")
        time.sleep(0.5)
        assert not _connects(broker.port, pki.ca, stolen), "revoked"
        assert _connects(broker.port, pki.ca, pki.client(OTHER)), "the other boxes still are"
    finally:
        broker.stop()


def _sim(name: str) -> dict[str, str]:
    return {"id": name, "url": f"sim://{name}?width=320&height=240&fps=10&gop=1"}


@pytest.fixture
def own_centre(pki: Pki, tmp_path: Path) -> Iterator[Mosquitto]:
    """A centre broker of the test's own (the daemon's retained messages stay out of the other
    tests'), with the two operators."""
    broker = centre_broker(tmp_path / "centre", pki, _acl_with_test_identities())
    try:
        yield broker.start()
    finally:
        broker.stop()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    """Clients to close at teardown."""
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


def _rejected(client: Client) -> bool:
    events = [json.loads(payload) for payload in client.got(f"{P}/events")]
    return any(event["event"] == "command_rejected" for event in events)


def test_the_daemon_reports_and_takes_commands_with_its_certificate_alone(
    tmp_path: Path, pki: Pki, own_centre: Mosquitto, clients: list[Client], gateway: StartGateway
) -> None:
    box = pki.client(SITE)
    mqtt = {
        "host": "127.0.0.1",
        "port": own_centre.port,
        "tls": {"ca_file": str(pki.ca), "cert_file": str(box.cert), "key_file": str(box.key)},
        "keepalive": "5s",
        "status_interval": "2s",
    }
    config = write_config(
        tmp_path / "gw.yaml", tmp_path / "rec", [_sim("lobby")], site_id=SITE, mqtt=mqtt,
        uplink=UPLINK,
    )  # fmt: skip
    operator = Client(own_centre.port, pki.ca, pki.client(OPERATOR), subscribe=f"{P}/#")
    clients.append(operator.ready())
    gw = gateway(config)
    wait_until(lambda: operator.got(f"{P}/cameras/lobby/status"), 20, "the camera's status")
    assert b"online" in operator.got(f"{P}/availability")
    assert json.loads(operator.got(f"{P}/state")[-1])["site"] == SITE
    other = Client(own_centre.port, pki.ca, pki.client(OPERATOR_2), subscribe="camera-gateway/#")
    clients.append(other.ready())
    # An MQTT 5 command: answered on the response topic the ACL keeps for this operator alone.
    reply = f"{P}/response/{OPERATOR}/call-4512"
    asked = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    asked.ResponseTopic, asked.CorrelationData = reply, b"\x01call-4512"
    operator.publish_with(f"{P}/cameras/lobby/forward/set", TOO_LONG, asked)
    wait_until(lambda: operator.got(reply), 10, "the answer on the operator's response topic")
    answer = next(m for m in operator.messages if m[0] == reply)
    assert answer[3].CorrelationData == b"\x01call-4512"
    assert json.loads(answer[1])["ok"] is False
    wait_until(lambda: _rejected(operator), 5, "the command_rejected event")
    wait_until(lambda: other.got(f"{P}/cameras/lobby/forward/result"), 5, "the 3.1.1 answer")
    assert reply not in other.topics(), "another operator's answer"
    assert "PRIVATE KEY" not in gw.log
    assert gw.stop() == 0
    wait_until(lambda: operator.got(f"{P}/availability")[-1] == b"offline", 5, "offline")
    # A reader that comes later gets the box's last word from the broker alone.
    late = Client(own_centre.port, pki.ca, pki.client(LANDLORD), subscribe=f"{P}/#")
    clients.append(late.ready())
    wait_until(lambda: f"{P}/cameras/lobby/status" in late.topics(), 5, "the retained status")
    assert late.got(f"{P}/availability") == [b"offline"]


TOO_LONG = json.dumps({"action": "start", "duration": "9h", "reason": "call 4512"})
BOX_PASSWORD = "box-local-secret"
UPLINK = {"url": "rtsp://127.0.0.1:9/{site_id}/{camera_id}", "max_session": "30m"}


def box_broker(directory: Path, pki: Pki, centre_port: int) -> Mosquitto:
    """The box's local broker on ``box-bridge.conf`` as deployed, bridged to the centre."""
    box = pki.client(SITE)
    etc = link(directory / "etc", {"fleet-ca.pem": pki.ca, "box.pem": box.cert, "box.key": box.key})
    (etc / "box-bridge.acl").symlink_to(DEPLOY / "box-bridge.acl")
    passwords = directory / "box.passwd"
    passwords.write_text("")
    subprocess.run(
        ["mosquitto_passwd", "-b", str(passwords), SITE, BOX_PASSWORD],
        check=True,
        capture_output=True,
    )
    (directory / "data").mkdir()
    port = free_port()
    config = render(
        DEPLOY / "box-bridge.conf",
        {
            "@SITE_ID@": SITE,
            "@CENTRE@": f"127.0.0.1:{centre_port}",
            "/etc/mosquitto/camera-gateway/": f"{etc}/",
            "/etc/mosquitto/box.passwd": str(passwords),
            "/var/lib/mosquitto/": f"{directory / 'data'}/",
            "listener 1883 127.0.0.1": f"listener {port} 127.0.0.1",
            "log_dest syslog": f"log_dest file {directory / 'mosquitto.log'}",
            # Shorter than deployed, so that the test need not wait for them:
            "autosave_interval 300": "autosave_interval 1",
            "restart_timeout 2 30": "restart_timeout 1",
        },
    )
    return Mosquitto(directory, config, port)


class LocalClient:
    """A plain MQTT 3.1.1 client of the box's local broker, with the daemon's user and password;
    with ``subscribe``, a persistent session recording what it gets (as the daemon would)."""

    def __init__(self, port: int, subscribe: str | None = None) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.subscribed = threading.Event()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-{SITE}-{free_port()}" if subscribe is None else f"test-{SITE}",
            clean_session=subscribe is None,
            protocol=paho.MQTTv311,
        )
        self._client.username_pw_set(SITE, BOX_PASSWORD)
        self._client.reconnect_delay_set(1, 1)
        self._client.on_message = lambda _c, _u, m: self.messages.append(
            (m.topic, bytes(m.payload))
        )
        if subscribe is not None:
            self._client.on_connect = lambda c, *_: c.subscribe(subscribe, qos=1)
            self._client.on_subscribe = lambda *_: self.subscribed.set()
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    def publish(self, topic: str, payload: bytes) -> None:
        self._client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _db_size(broker: Mosquitto) -> int:
    return (broker.directory / "data" / "mosquitto.db").stat().st_size


def _rss(broker: Mosquitto) -> int:
    """The broker's resident memory in bytes."""
    assert broker.proc is not None
    status = Path(f"/proc/{broker.proc.pid}/status").read_text()
    return (
        int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
        * 1024
    )


def _rates(client: Client, since: int, seconds: float) -> dict[str, tuple[float, int]]:
    """Messages per second and mean payload bytes by topic (camera ids folded), from the
    ``since``-th message on."""
    counts: dict[str, list[int]] = {}
    for topic, payload, *_ in client.messages[since:]:
        parts = topic.split("/")[2:]
        kind = "cameras/<id>/" + "/".join(parts[2:]) if parts[0] == "cameras" else "/".join(parts)
        counts.setdefault(kind, []).append(len(payload))
    return {
        kind: (round(len(sizes) / seconds, 3), sum(sizes) // len(sizes))
        for kind, sizes in sorted(counts.items())
    }


LOAD = 1000


def test_a_bridged_box_delivers_what_it_queued_during_an_uplink_outage(
    tmp_path: Path, pki: Pki, clients: list[Client], gateway: StartGateway
) -> None:
    centre = centre_broker(tmp_path / "centre", pki, (DEPLOY / "centre.acl").read_text())
    local = box_broker(tmp_path / "box", pki, centre.port)
    loader: LocalClient | None = None
    try:
        centre.start()
        local.start()
        operator = Client(
            centre.port, pki.ca, pki.client(OPERATOR), subscribe=f"{P}/#", persistent=True,
            client_id=OPERATOR,
        )  # fmt: skip
        clients.append(operator.ready())
        mqtt = {
            "host": "127.0.0.1", "port": local.port, "username": SITE, "password": BOX_PASSWORD,
            "keepalive": "5s", "status_interval": "2s",
        }  # fmt: skip
        config = write_config(
            tmp_path / "gw.yaml", tmp_path / "rec", [_sim("lobby")], site_id=SITE, mqtt=mqtt,
            uplink=UPLINK,
        )  # fmt: skip
        gw = gateway(config)
        wait_until(lambda: operator.got(f"{P}/cameras/lobby/status"), 20, "status, bridged")
        wait_until(lambda: operator.got(f"{P}/bridge")[-1:] == [b"1"], 5, "the bridge's state")
        # A command crosses the bridge down, its answer up (on .../result: the bridge speaks
        # MQTT 3.1.1, so a response topic does not cross).
        operator.publish(f"{P}/cameras/lobby/forward/set", TOO_LONG)
        result = f"{P}/cameras/lobby/forward/result"
        wait_until(lambda: operator.got(result), 10, "the answer, over the bridge")
        assert json.loads(operator.got(result)[0])["ok"] is False
        time.sleep(2)  # past the start-up burst
        since, window = len(operator.messages), 8.0
        time.sleep(window)
        rates = _rates(operator, since, window)
        status = operator.got(f"{P}/cameras/lobby/status")[-1]
        print(f"\n(per second, mean bytes) by topic, 1 camera, status 2 s, segments 4 s: {rates}")
        print(f"camera status payload: {len(status)} bytes")

        # The uplink goes: the centre's broker is away; the box goes on, its broker queues.
        centre.stop()
        down = time.monotonic()
        wait_until(lambda: not operator.connected.is_set(), 5, "the operator cut off too")
        ticket = ("--camera", "lobby", "--reason", "alarm during the outage")
        assert gw.forward("start", *ticket, "--duration", "1m").returncode == 0
        time.sleep(0.5)
        assert gw.forward("stop", "--camera", "lobby", "--reason", "over").returncode == 0
        time.sleep(2.5)  # an autosave
        before, rss_before = _db_size(local), _rss(local)
        loader = LocalClient(local.port)
        for n in range(LOAD):
            loader.publish(f"{P}/response/{OPERATOR}/load/{n}", status)
        loader.close()
        loader = None
        rss = (_rss(local) - rss_before) * 1000 / LOAD
        local.stop()  # a clean stop writes the queue to disk; then the box's broker restarts
        after = _db_size(local)
        per_thousand = (after - before) * 1000 / LOAD
        print(f"mosquitto.db: {before} B before, {after} B with {LOAD} more queued messages of")
        print(f"  {len(status)} B: {per_thousand / 1e3:.0f} kB on disk per 1000 queued,")
        print(f"  {rss / 1e3:.0f} kB of the broker's memory")
        local.start()
        time.sleep(3)
        outage = time.monotonic() - down
        centre.start()
        back = time.monotonic()

        def load_arrived() -> int:
            return len({t for t in operator.topics() if "/load/" in t})

        wait_until(lambda: load_arrived() == LOAD, 30, "the queued messages, after the outage")
        drained = time.monotonic() - back
        print(f"outage {outage:.1f} s; everything queued delivered {drained:.1f} s after")
        events = [json.loads(p) for t, p, r, _ in operator.messages if t == f"{P}/events"]
        kinds = [event["event"] for event in events]
        assert "forward_started" in kinds and "forward_stopped" in kinds, kinds
        assert kinds.index("forward_started") < kinds.index("forward_stopped")
        assert not any(r for t, _, r, _ in operator.messages if t == f"{P}/events"), "not retained"
        loads = [int(t.rsplit("/", 1)[1]) for t in operator.topics() if "/load/" in t]
        assert list(dict.fromkeys(loads)) == list(range(LOAD)), "in order (QoS 1 may repeat)"
        wait_until(lambda: operator.got(f"{P}/bridge")[-1:] == [b"1"], 10, "the bridge back")

        # The box itself drops off the network: the centre says so at once (the bridge's will).
        assert local.proc is not None
        local.proc.kill()
        wait_until(lambda: operator.got(f"{P}/bridge")[-1:] == [b"0"], 10, "the bridge's will")
    finally:
        if loader is not None:
            loader.close()
        local.stop()
        centre.stop()


def test_a_command_that_expires_while_the_box_is_away_is_never_carried_out(
    tmp_path: Path, pki: Pki, clients: list[Client]
) -> None:
    """The centre keeps the bridge's session (cleansession false), so a command sent while a box
    is away is delivered when it is back: hours later, unless the operator's client gives it a
    message expiry interval (MQTT 5), which the centre's broker honours."""
    centre = centre_broker(tmp_path / "centre", pki, (DEPLOY / "centre.acl").read_text())
    local = box_broker(tmp_path / "box", pki, centre.port)
    daemon: LocalClient | None = None
    try:
        centre.start()
        local.start()
        operator = Client(centre.port, pki.ca, pki.client(OPERATOR), subscribe=f"{P}/bridge")
        clients.append(operator.ready())
        daemon = LocalClient(local.port, subscribe=f"{P}/cameras/+/forward/set")
        assert daemon.subscribed.wait(10), "its session, kept by the box's broker"
        wait_until(lambda: operator.got(f"{P}/bridge")[-1:] == [b"1"], 10, "the bridge up")
        local.stop()  # the box is away
        wait_until(lambda: operator.got(f"{P}/bridge")[-1:] == [b"0"], 10, "the box away")
        expiring = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        expiring.MessageExpiryInterval = 2
        operator.publish_with(f"{P}/cameras/hall/forward/set", "stale", expiring)
        operator.publish(f"{P}/cameras/hall/forward/set", "kept")
        time.sleep(3.5)
        local.start()
        wait_until(lambda: daemon is not None and daemon.messages, 15, "the kept command")
        time.sleep(1)
        assert [payload for _, payload in daemon.messages] == [b"kept"]
    finally:
        if daemon is not None:
            daemon.close()
        local.stop()
        centre.stop()
