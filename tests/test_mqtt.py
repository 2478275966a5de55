"""Status, events and commands over MQTT, against a real mosquitto broker."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from helpers import (
    Broker,
    MqttWatcher,
    StartCamera,
    StartCentre,
    StartGateway,
    metric,
    wait_until,
    write_config,
)

P = "camera-gateway/res-0042"


def _sim(name: str) -> dict[str, str]:
    return {"id": name, "url": f"sim://{name}?width=320&height=240&fps=10&gop=1"}


def _mqtt(broker: Broker, **extra: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": broker.port,
        "username": "gateway",
        "password": "gw-secret",
        "keepalive": "5s",
        "status_interval": "2s",
        **extra,
    }


def _config(tmp_path: Path, broker: Broker, cameras: list[dict[str, Any]], **extra: Any) -> Path:
    return write_config(
        tmp_path / "gw.yaml",
        tmp_path / "rec",
        cameras,
        site_id="res-0042",
        mqtt=extra.pop("mqtt", _mqtt(broker)),
        **extra,
    )


def test_status_state_availability_and_last_will(
    tmp_path: Path, broker: Broker, gateway: StartGateway
) -> None:
    watcher = MqttWatcher(broker.port, "watcher", "w-secret", f"{P}/#")
    try:
        cameras: list[dict[str, Any]] = [_sim("hall"), {**_sim("yard"), "audio": True}]
        gw = gateway(_config(tmp_path, broker, cameras))
        wait_until(lambda: watcher.retained.get(f"{P}/availability") == b"online", 15, "online")

        def seen(camera: str) -> bool:
            topic = f"{P}/cameras/{camera}/status"
            return topic in watcher.retained and watcher.json(topic)["last_frame"] is not None

        wait_until(lambda: seen("hall") and seen("yard"), 15, "both cameras with frames")
        status = watcher.json(f"{P}/cameras/hall/status")
        assert status["codec"] == "h264" and (status["width"], status["height"]) == (320, 240)
        assert status["recording"] in (True, False) and status["forward"] == "off"
        assert status["last_frame"].endswith("Z") and status["since"].endswith("Z")
        assert status["fps"] >= 0 and "bitrate_kbps" in status
        assert status["audio"] is False and watcher.json(f"{P}/cameras/yard/status")["audio"]
        state = watcher.json(f"{P}/state")
        assert state["cameras"]["total"] == 2 and state["version"]
        assert state["storage"]["quota"] > 0 and "clock_synchronized" in state
        assert all(retain for t, _, retain in watcher.messages if t.endswith("/status"))

        # Published again every status_interval even with no change.
        count = sum(1 for t, _, _ in watcher.messages if t == f"{P}/cameras/hall/status")
        time.sleep(4.5)
        again = sum(1 for t, _, _ in watcher.messages if t == f"{P}/cameras/hall/status")
        assert again >= count + 2
        assert metric(gw.metrics(), "camera_gateway_mqtt_connected") == 1.0

        gw.kill()  # no clean disconnect: the broker publishes the last will
        wait_until(lambda: watcher.retained.get(f"{P}/availability") == b"offline", 10, "will")
    finally:
        watcher.close()


def test_clean_stop_publishes_offline(
    tmp_path: Path, broker: Broker, gateway: StartGateway
) -> None:
    watcher = MqttWatcher(broker.port, "watcher", "w-secret", f"{P}/availability")
    try:
        gw = gateway(_config(tmp_path, broker, [_sim("hall")]))
        wait_until(lambda: watcher.retained.get(f"{P}/availability") == b"online", 15, "online")
        assert gw.stop() == 0
        wait_until(lambda: watcher.retained.get(f"{P}/availability") == b"offline", 5, "offline")
    finally:
        watcher.close()


def test_broker_restart_republishes_retained_status_and_queued_events(
    tmp_path: Path, broker: Broker, gateway: StartGateway
) -> None:
    gw = gateway(_config(tmp_path, broker, [_sim("hall")], storage={"segment_duration": "1s"}))
    gw.wait_log("MQTT: connected", 15)
    broker.stop()
    gw.wait_log("MQTT: disconnected", 10)
    time.sleep(3)
    assert gw.proc is not None and gw.proc.poll() is None
    assert len(gw.segments("hall")) >= 2, "recording goes on without the broker"
    broker.start()  # a fresh broker: nothing retained until the gateway republishes
    watcher = MqttWatcher(broker.port, "watcher", "w-secret", f"{P}/#")
    try:
        wait_until(lambda: f"{P}/cameras/hall/status" in watcher.retained, 40, "republished status")
        assert watcher.retained.get(f"{P}/availability") == b"online"
        assert f"{P}/state" in watcher.retained
    finally:
        watcher.close()
    assert gw.log.count("MQTT: connected") >= 2


def test_malformed_commands_are_rejected_with_a_reason(
    tmp_path: Path, broker: Broker, gateway: StartGateway
) -> None:
    config = _config(
        tmp_path,
        broker,
        [_sim("hall")],
        uplink={"url": "rtsp://127.0.0.1:9/{site_id}/{camera_id}", "max_session": "30m"},
    )
    watcher = MqttWatcher(broker.port, "watcher", "w-secret", f"{P}/#")
    try:
        gw = gateway(config)
        wait_until(lambda: watcher.retained.get(f"{P}/availability") == b"online", 15, "online")
        commands = [
            ("hall", "not json"),
            ("hall", json.dumps(["a", "list"])),
            ("hall", json.dumps({"action": "dance"})),
            ("hall", json.dumps({"action": "start", "duration": "2h", "reason": "r"})),
            ("hall", json.dumps({"action": "start", "duration": "10m"})),
            ("nope", json.dumps({"action": "start", "duration": "10m", "reason": "r"})),
            ("hall", json.dumps({"action": "stop"})),
        ]
        for camera, payload in commands:
            watcher.publish(f"{P}/cameras/{camera}/forward/set", payload)
        wait_until(
            lambda: len(watcher.events("command_rejected")) >= len(commands), 10, "rejections"
        )
        reasons = [e["reason"] for e in watcher.events("command_rejected")]
        assert "the payload is not a JSON object" in reasons[0] and reasons[1] == reasons[0]
        assert "action" in reasons[2]
        assert "exceeds uplink.max_session" in reasons[3]
        assert "reason" in reasons[4]
        assert "unknown camera 'nope'" in reasons[5]
        assert "no forward session is active" in reasons[6]
        assert all(e["time"].endswith("Z") for e in watcher.events("command_rejected"))
        assert watcher.events("forward_started") == []
        assert gw.forward_status()["hall"]["state"] == "off"
    finally:
        watcher.close()


def test_forward_command_over_mqtt_starts_a_journalled_session(
    tmp_path: Path, broker: Broker, cameras: StartCamera, centre: StartCentre, gateway: StartGateway
) -> None:
    camera = cameras(["/main:fps=25:gop=25"])
    receiver = centre(["/res-0042/hall"])
    config = _config(
        tmp_path,
        broker,
        [{"id": "hall", "url": camera.url("/main")}],
        uplink={"url": receiver.url()},
    )
    watcher = MqttWatcher(broker.port, "watcher", "w-secret", f"{P}/#")
    try:
        gw = gateway(config)
        wait_until(lambda: watcher.retained.get(f"{P}/availability") == b"online", 15, "online")
        command = {"action": "start", "duration": "3s", "reason": "alarm 17", "requested_by": "CSU"}
        watcher.publish(f"{P}/cameras/hall/forward/set", json.dumps(command))
        wait_until(lambda: watcher.events("forward_stopped"), 15, "the session to end")
        started = watcher.events("forward_started")[0]
        assert started["camera"] == "hall" and started["requested_by"] == "CSU"
        wait_until(
            lambda: watcher.json(f"{P}/cameras/hall/status")["forward"] == "off", 5, "status off"
        )
        entry = gw.forward_journal()[0]
        assert entry["origin"] == "mqtt" and entry["reason"] == "alarm 17"
        assert receiver.files()
    finally:
        watcher.close()


def test_camera_down_is_published_offline_within_5s(
    tmp_path: Path, broker: Broker, cameras: StartCamera, gateway: StartGateway
) -> None:
    camera = cameras(["/main:fps=25:gop=25"])
    watcher = MqttWatcher(broker.port, "watcher", "w-secret", f"{P}/#")
    try:
        gateway(_config(tmp_path, broker, [{"id": "door", "url": camera.url("/main")}]))
        topic = f"{P}/cameras/door/status"
        wait_until(
            lambda: topic in watcher.retained and watcher.json(topic)["state"] == "online",
            15,
            "online",
        )
        camera.kill()
        killed = time.monotonic()
        wait_until(lambda: watcher.json(topic)["state"] == "offline", 5, "offline status")
        print(f"\ncamera down published after {time.monotonic() - killed:.2f} s")
        offline = watcher.events("camera_offline")
        assert offline and offline[0]["camera"] == "door" and offline[0]["reason"]
    finally:
        watcher.close()


def test_tls_listener_and_refused_credentials(
    tmp_path: Path, broker: Broker, gateway: StartGateway
) -> None:
    assert broker.tls is not None and broker.tls_port is not None
    secure = _mqtt(broker, port=broker.tls_port, tls={"ca_file": str(broker.tls["ca"])})
    gw = gateway(_config(tmp_path, broker, [_sim("hall")], mqtt=secure))
    gw.wait_log("MQTT: connected", 15)
    assert metric(gw.metrics(), "camera_gateway_mqtt_connected") == 1.0
    assert gw.stop() == 0

    work = tmp_path / "wrong"
    work.mkdir()
    gw = gateway(_config(work, broker, [_sim("hall")], mqtt=_mqtt(broker, password="nope-nope")))
    gw.wait_log("refused our credentials", 15)
    time.sleep(3)
    assert gw.log.count("refused our credentials") == 1, "logged once, not at every retry"
    assert "nope-nope" not in gw.log
    assert metric(gw.metrics(), "camera_gateway_mqtt_connected") == 0.0
    assert gw.stop() == 0


class _Mqtt311OnlyBroker:
    """Speaks just enough MQTT 3.1.1 to accept a client, refusing MQTT 5 as such brokers do
    (CONNACK return code 1). mosquitto accepts MQTT 5, so an older broker is played here."""

    def __init__(self) -> None:
        import socket
        import threading

        self.levels: list[int] = []
        self.topics: list[str] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import threading

        self._server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    @staticmethod
    def _packet(conn: Any) -> tuple[int, bytes] | None:
        header = conn.recv(1)
        if not header:
            return None
        length, shift = 0, 0
        while True:
            byte = conn.recv(1)[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        body = b""
        while len(body) < length:
            chunk = conn.recv(length - len(body))
            if not chunk:
                return None
            body += chunk
        return header[0], body

    def _client(self, conn: Any) -> None:
        with conn:
            conn.settimeout(10)
            try:
                packet = self._packet(conn)
                if packet is None:
                    return
                level = packet[1][6]
                self.levels.append(level)
                if level != 4:
                    conn.sendall(b"\x20\x02\x00\x01")  # unacceptable protocol version
                    return
                conn.sendall(b"\x20\x02\x00\x00")
                while (packet := self._packet(conn)) is not None:
                    kind, body = packet
                    if kind >> 4 == 3:  # PUBLISH
                        size = int.from_bytes(body[:2], "big")
                        self.topics.append(body[2 : 2 + size].decode())
                        if (kind >> 1) & 3:
                            conn.sendall(b"\x40\x02" + body[2 + size : 4 + size])
                    elif kind >> 4 == 8:  # SUBSCRIBE
                        conn.sendall(b"\x90\x03" + body[:2] + b"\x01")
                    elif kind >> 4 == 12:  # PINGREQ
                        conn.sendall(b"\xd0\x00")
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._server.close()


def test_falls_back_to_mqtt_311_when_the_broker_refuses_mqtt_5(
    tmp_path: Path, gateway: StartGateway
) -> None:
    old = _Mqtt311OnlyBroker()
    try:
        mqtt = {"host": "127.0.0.1", "port": old.port, "status_interval": "2s"}
        config = write_config(
            tmp_path / "gw.yaml", tmp_path / "rec", [_sim("hall")], site_id="res-0042", mqtt=mqtt
        )
        gw = gateway(config)
        gw.wait_log("(MQTT 3.1.1)", 20)
        assert "does not speak MQTT 5" in gw.log
        wait_until(lambda: f"{P}/cameras/hall/status" in old.topics, 10, "status over 3.1.1")
        assert old.levels[0] == 5 and 4 in old.levels
        assert f"{P}/availability" in old.topics
        assert gw.stop() == 0
    finally:
        old.close()


def test_the_deployed_acl_lets_only_the_centre_send_commands_and_see_snapshots(
    tmp_path: Path, gateway: StartGateway
) -> None:
    from helpers import ROOT

    acl = ROOT / "deploy" / "mosquitto" / "camera-gateway.acl"
    broker = Broker(
        tmp_path / "acl-broker",
        users={"res-0042": "box-secret", "csu": "csu-secret", "landlord": "ll-secret"},
        tls=None,
        acl=acl,
    ).start()
    try:
        mqtt = {
            "host": "127.0.0.1",
            "port": broker.port,
            "username": "res-0042",
            "password": "box-secret",
            "status_interval": "2s",
        }
        config = write_config(
            tmp_path / "gw.yaml",
            tmp_path / "rec",
            [_sim("hall")],
            site_id="res-0042",
            mqtt=mqtt,
            uplink={"url": "rtsp://127.0.0.1:9/{site_id}/{camera_id}", "max_session": "30m"},
        )
        centre = MqttWatcher(broker.port, "csu", "csu-secret", f"{P}/#")
        landlord = MqttWatcher(broker.port, "landlord", "ll-secret", f"{P}/#")
        try:
            gateway(config)
            wait_until(lambda: f"{P}/cameras/hall/status" in landlord.retained, 15, "status")
            too_long = json.dumps({"action": "start", "duration": "9h", "reason": "r"})
            landlord.publish(f"{P}/cameras/hall/forward/set", too_long)
            time.sleep(2)
            assert centre.events("command_rejected") == [], "the broker dropped the landlord's"
            centre.publish(f"{P}/cameras/hall/forward/set", too_long)
            wait_until(lambda: centre.events("command_rejected"), 10, "the centre's command")
            wait_until(lambda: f"{P}/seal" in centre.retained, 10, "the box's seal heads")
            # Snapshots: asked by the centre only, and seen by the centre only.
            ask = json.dumps({"requested_by": "opérateur 12", "reason": "appel 17"})
            landlord.publish(f"{P}/cameras/hall/snapshot/set", ask)
            time.sleep(2)
            assert f"{P}/cameras/hall/snapshot/result" not in centre.retained
            centre.publish(f"{P}/cameras/hall/snapshot/set", ask)
            picture = f"{P}/cameras/hall/snapshot"
            wait_until(lambda: picture in centre.retained, 15, "the snapshot, at the centre")
            assert centre.retained[picture][:2] == b"\xff\xd8", "a JPEG"
            wait_until(lambda: f"{picture}/result" in landlord.retained, 10, "the result")
            assert picture not in landlord.retained, "the landlord may not see pictures"
        finally:
            centre.close()
            landlord.close()
    finally:
        broker.stop()


def test_seal_heads_are_published_retained_and_match_the_journals(
    tmp_path: Path, broker: Broker, gateway: StartGateway
) -> None:
    from helpers import cli

    watcher = MqttWatcher(broker.port, "watcher", "w-secret", f"{P}/seal")
    try:
        config = _config(tmp_path, broker, [_sim("hall")], storage={"segment_duration": "1s"})
        gw = gateway(config)

        def chained() -> bool:
            if f"{P}/seal" not in watcher.retained:
                return False
            seq: int = watcher.json(f"{P}/seal")["cameras"].get("hall", {}).get("seq", 0)
            return seq >= 2

        wait_until(chained, 20, "the camera's chain head")
        seal = watcher.json(f"{P}/seal")
        assert len(seal["key_fingerprint"]) == 64
        assert seal["audit"]["seq"] >= 2 and len(seal["audit"]["hash"]) == 64
        assert all(retain for t, _, retain in watcher.messages if t == f"{P}/seal")
        head = f"{seal['audit']['seq']}:{seal['audit']['hash']}"
        checked = cli("audit", "verify", "--config", str(config), "--head", head)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert gw.stop() == 0
        # What the centre holds exposes a journal cut back to before that head.
        journal = next((tmp_path / "rec" / "audit").glob("audit-*.jsonl"))
        lines = journal.read_text().splitlines()
        journal.write_text("\n".join(lines[: seal["audit"]["seq"] - 1]) + "\n")
        cut = cli("audit", "verify", "--config", str(config), "--head", head)
        assert cut.returncode == 1 and "entries removed from the end" in cut.stdout, cut.stdout
    finally:
        watcher.close()


def test_a_slow_command_does_not_hold_up_events_and_status(broker: Broker) -> None:
    """A forward command may wait (a pusher slow to close, the journal's fsync): the events and
    status published meanwhile must not wait with it."""
    import threading

    from gateway.config.mqtt import MqttConfig
    from gateway.telemetry.events import EventBus
    from gateway.telemetry.mqtt import MqttPublisher
    from gateway.telemetry.mqtt.publisher import MqttView

    release = threading.Event()
    taken: list[tuple[str, bytes]] = []

    def slow_command(camera_id: str, payload: bytes) -> None:
        taken.append((camera_id, payload))
        release.wait(10)

    bus = EventBus()
    publisher = MqttPublisher(
        MqttConfig.model_validate(_mqtt(broker)),
        site_id="res-0042",
        view=lambda: MqttView(uptime=1.0, cameras=[], storage=None, clock_synchronized=None),
        events=bus.subscribe(),
        on_command=slow_command,
    )
    watcher = MqttWatcher(broker.port, "watcher", "w-secret", f"{P}/#")
    publisher.start()
    try:
        wait_until(lambda: publisher.connected, 10, "the publisher to connect")
        watcher.publish(f"{P}/cameras/hall/forward/set", '{"action": "stop"}')
        wait_until(lambda: taken, 5, "the command to be taken")
        sent = time.monotonic()
        bus.emit("storage_error", reason="while a command waits")
        wait_until(lambda: watcher.events("storage_error"), 5, "the event")
        delay = time.monotonic() - sent
        assert delay < 5, f"the event waited {delay:.1f} s for the command (held 10 s)"
        assert publisher.alive
    finally:
        release.set()
        publisher.stop()
        watcher.close()
