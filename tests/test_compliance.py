"""Legal stream minima (arrêté of 3 August 2007): the judgement of each camera, with a clock the
test moves, and the configuration of the minima."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import (
    Broker,
    MqttWatcher,
    StartCamera,
    StartGateway,
    cli,
    metric,
    wait_until,
    write_config,
)

from gateway.config import ConfigError, load_config
from gateway.telemetry.compliance import (
    FPS_TOLERANCE,
    HOLD,
    SETTLE,
    Change,
    Compliance,
    Minimum,
    Share,
)

HOUR = 3600.0
P = "camera-gateway/res-0042"


class Camera:
    """A camera fed to :class:`Compliance` once a second, as the supervision loop does."""

    def __init__(self, minimum: Minimum | None = None) -> None:
        self.compliance = Compliance(minimum or Minimum())
        self.now = 1000.0
        self.changes: list[Change] = []

    def run(
        self,
        seconds: float,
        *,
        online: bool = True,
        fps: float = 25.0,
        size: tuple[int, int] = (1920, 1080),
        step: float = 1.0,
    ) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += step
            width, height = size
            self.changes += self.compliance.observe(
                self.now, online=online, fps=fps, width=width, height=height
            )

    def ok(self, rule: str) -> bool:
        return self.compliance.rules["fps" if rule == "fps" else "resolution"].ok

    def ratio(self, rule: str) -> float | None:
        return self.compliance.rules["fps" if rule == "fps" else "resolution"].ratio


def test_a_compliant_camera_is_never_announced() -> None:
    camera = Camera()
    camera.run(60, fps=6.0, size=(704, 576))
    assert camera.changes == []
    assert camera.ok("fps") and camera.ok("resolution")
    assert camera.ratio("fps") == camera.ratio("resolution") == 1.0


def test_a_slow_camera_breaks_the_fps_rule_after_settling_and_holding() -> None:
    camera = Camera()
    camera.run(SETTLE + HOLD - 1, fps=4.0)
    assert camera.changes == [] and camera.ok("fps"), "not before settle + hold"
    camera.run(2, fps=4.0)
    assert camera.changes == [Change("fps", False, 4.0, 6.0)]
    assert not camera.ok("fps") and camera.ok("resolution")
    # back to 25 fps: announced once the good verdict has held
    camera.run(HOLD + 1)
    assert camera.changes[1:] == [Change("fps", True, 25.0, 6.0)] and camera.ok("fps")


def test_a_small_picture_breaks_the_resolution_rule() -> None:
    camera = Camera()
    camera.run(SETTLE + HOLD + 1, size=(320, 240))
    assert camera.changes == [Change("resolution", False, "320x240", "704x576")]
    camera.changes.clear()
    camera.run(SETTLE + HOLD + 1, size=(704, 480))  # wide enough, not tall enough
    assert camera.changes == [] and not camera.ok("resolution")


def test_a_rate_within_the_tolerance_of_one_frame_per_window_is_compliant() -> None:
    camera = Camera()
    camera.run(60, fps=6.0 - FPS_TOLERANCE)
    assert camera.changes == [] and camera.ok("fps")


def test_a_camera_hovering_at_its_minimum_does_not_flap() -> None:
    camera = Camera()
    for _ in range(20):  # bad for 3 s, good for 2 s, again and again
        camera.run(3, fps=4.0)
        camera.run(2, fps=25.0)
    assert camera.changes == [] and camera.ok("fps")


def test_an_offline_camera_breaks_nothing_and_its_time_is_not_counted() -> None:
    camera = Camera()
    camera.run(SETTLE + HOLD + 1, fps=4.0)
    assert not camera.ok("fps")
    ratio = camera.ratio("fps")
    camera.run(HOUR, online=False, fps=0.0, step=5.0)
    assert camera.ok("fps"), "not broken while offline"
    assert camera.ratio("fps") == ratio, "offline time is neither good nor bad"
    assert len(camera.changes) == 1, "going offline is not a compliance change"


def test_a_camera_that_reconnects_still_broken_is_not_announced_again() -> None:
    camera = Camera()
    camera.run(SETTLE + HOLD + 1, fps=4.0)
    camera.run(10, online=False, fps=0.0)
    camera.run(SETTLE + 1, fps=4.0)
    assert not camera.ok("fps"), "shown broken again as soon as it is judged"
    assert camera.changes == [Change("fps", False, 4.0, 6.0)]
    camera.run(10, online=False, fps=0.0)
    camera.run(SETTLE + HOLD + 2, fps=25.0)
    assert camera.changes[1:] == [Change("fps", True, 25.0, 6.0)]


def test_the_share_is_weighted_by_time_over_the_last_24_hours() -> None:
    camera = Camera(Minimum(fps=6.0, width=320, height=240))
    camera.run(SETTLE, step=1.0)
    camera.run(6 * HOUR, fps=25.0, step=5.0)
    camera.run(2 * HOUR, fps=3.0, step=5.0)  # a quarter of the judged time
    fps = camera.ratio("fps")
    assert fps is not None and fps == pytest.approx(0.75, abs=0.002)
    assert camera.ratio("resolution") == pytest.approx(1.0)
    # 24 h later the good hours have left the window; only the bad ones and what follows count
    camera.run(22 * HOUR, fps=3.0, step=5.0)
    later = camera.ratio("fps")
    assert later is not None and later < 0.01


def test_share_buckets_are_bounded_and_old_ones_forgotten() -> None:
    share = Share()
    for minute in range(3 * 24 * 60):  # three days, a minute at a time
        share.add(minute * 60.0 + 30, 60.0, compliant=minute >= 2 * 24 * 60)
    assert len(share._buckets) <= 24 * 60 + 1
    assert share.ratio(3 * 24 * 3600.0) == 1.0
    assert Share().ratio(0.0) is None


def test_a_long_hold_up_of_the_loop_is_not_counted() -> None:
    camera = Camera()
    camera.run(SETTLE + 2)
    before = camera.compliance.rules["fps"].share.ratio(camera.now)
    camera.run(HOUR, step=HOUR)  # one observation an hour later
    assert camera.compliance.rules["fps"].share._buckets[-1][1] <= 5.0
    assert before == 1.0


# -- configuration -------------------------------------------------------------------------------


def _camera(name: str, **extra: Any) -> dict[str, Any]:
    return {"id": name, "url": f"sim://{name}?width=320&height=240&fps=10", **extra}


def test_minimum_defaults_to_the_legal_one_and_merges_key_by_key(tmp_path: Path) -> None:
    cameras = [_camera("hall"), _camera("yard", minimum={"fps": 12}), _camera("lift")]
    config = load_config(
        write_config(tmp_path / "gw.yaml", tmp_path / "rec", cameras, minimum={"width": 640})
    )
    minima = [(c.minimum.fps, c.minimum.width, c.minimum.height) for c in config.cameras]
    assert minima == [(6.0, 640, 576), (12.0, 640, 576), (6.0, 640, 576)]
    plain = load_config(write_config(tmp_path / "p.yaml", tmp_path / "rec", [_camera("hall")]))
    assert (plain.cameras[0].minimum.fps, plain.cameras[0].minimum.width) == (6.0, 704)


@pytest.mark.parametrize(
    ("where", "minimum", "problem"),
    [
        ("camera", {"fps": 0}, "cameras[0].minimum.fps: must be between 1 and 120 frames"),
        ("camera", {"fps": 500}, "cameras[0].minimum.fps: must be between 1 and 120 frames"),
        ("camera", {"width": 8}, "cameras[0].minimum.width: must be between 16 and 8192 pixels"),
        ("camera", {"height": "tall"}, "cameras[0].minimum.height:"),
        ("camera", {"fsp": 6}, "cameras[0].minimum.fsp: unknown key"),
        ("site", {"height": 100000}, "minimum.height: must be between 16 and 8192 pixels"),
    ],
)
def test_bad_minima_are_named(
    tmp_path: Path, where: str, minimum: dict[str, Any], problem: str
) -> None:
    camera = _camera("hall", minimum=minimum) if where == "camera" else _camera("hall")
    extra = {"minimum": minimum} if where == "site" else {}
    path = write_config(tmp_path / "gw.yaml", tmp_path / "rec", [camera], **extra)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    assert any(p.startswith(problem) for p in problems), problems
    assert len(problems) == 1, "a bad site-wide minimum is reported once, on itself"


# -- a real daemon ---------------------------------------------------------------------------------


@pytest.mark.camera
def test_cameras_below_the_legal_minima_are_reported_everywhere(
    tmp_path: Path, cameras: StartCamera, gateway: StartGateway, broker: Broker
) -> None:
    server = cameras(["/slow:fps=4:gop=4"])  # 640x360 at 4 fps, a real RTSP camera
    small_enough = {"width": 320, "height": 240}
    config = write_config(
        tmp_path / "gw.yaml",
        tmp_path / "rec",
        [
            _camera("small"),  # 320x240 against the legal 704x576
            {"id": "slow", "url": server.url("/slow"), "minimum": small_enough},
            _camera("good", minimum=small_enough),
        ],
        site_id="res-0042",
        mqtt={
            "host": "127.0.0.1",
            "port": broker.port,
            "username": "gateway",
            "password": "gw-secret",
            "status_interval": "2s",
        },
    )
    watcher = MqttWatcher(broker.port, "watcher", "w-secret", f"{P}/#")
    try:
        gw = gateway(config)
        broken = wait_until(
            lambda: (found := watcher.events("compliance_broken")) and len(found) >= 2 and found,
            SETTLE + HOLD + 15,
            "both cameras reported below their minima",
        )
        by_camera = {event["camera"]: event for event in broken}
        assert set(by_camera) == {"small", "slow"}, broken
        assert by_camera["small"]["rule"] == "resolution"
        assert (by_camera["small"]["measured"], by_camera["small"]["minimum"]) == (
            "320x240",
            "704x576",
        )
        assert by_camera["slow"]["rule"] == "fps" and by_camera["slow"]["minimum"] == 6.0
        assert 3.0 <= by_camera["slow"]["measured"] <= 5.0
        gw.wait_log("camera small: picture size 320x240 below the legal minimum of 704x576")
        gw.wait_log("camera slow: frame rate (fps)")

        status = gw.status()
        assert status["small"]["compliance"]["resolution"]["ok"] is False
        assert status["small"]["compliance"]["fps"]["ok"] is True
        assert status["slow"]["compliance"]["fps"]["ok"] is False
        assert status["slow"]["compliance"]["resolution"]["ok"] is True
        good = status["good"]["compliance"]
        assert all(good[rule]["ok"] and good[rule]["checked"] for rule in ("fps", "resolution"))
        assert good["fps"]["ratio_24h"] == 1.0 and good["fps"]["minimum"] == 6.0
        assert status["small"]["compliance"]["resolution"]["ratio_24h"] < 0.5

        def published(camera: str, rule: str) -> bool | None:
            topic = f"{P}/cameras/{camera}/status"
            if topic not in watcher.retained:
                return None
            entry = watcher.json(topic)["compliance"][rule]
            return bool(entry["ok"]) if entry["checked"] else None

        wait_until(
            lambda: (
                published("small", "resolution") is False
                and published("slow", "fps") is False
                and published("good", "fps") is True
            ),
            5,
            "the MQTT status",
        )
        metrics = gw.metrics()
        ok = "camera_gateway_camera_compliance_ok"
        assert metric(metrics, f'{ok}{{camera="small",rule="resolution"}}') == 0.0
        assert metric(metrics, f'{ok}{{camera="slow",rule="fps"}}') == 0.0
        assert metric(metrics, f'{ok}{{camera="good",rule="fps"}}') == 1.0
        assert metric(metrics, f'{ok}{{camera="good",rule="resolution"}}') == 1.0
        ratio = "camera_gateway_camera_compliance_ratio"
        assert metric(metrics, f'{ratio}{{camera="good",rule="fps"}}') == 1.0
        assert metric(metrics, f'{ratio}{{camera="slow",rule="fps"}}') < 0.5

        table = cli("status", "--config", str(config)).stdout
        assert "resolution 320x240 below the legal minimum 704x576" in table
        assert watcher.events("compliance_restored") == []
        assert not any(event["camera"] == "good" for event in watcher.events("compliance_broken"))

        # A reload that lowers a camera's minimum judges it anew without touching its worker.
        workers = gw.workers()
        data = yaml.safe_load(config.read_text())
        data["cameras"][0]["minimum"] = small_enough
        config.write_text(yaml.safe_dump(data))
        assert gw.proc is not None
        os.kill(gw.proc.pid, signal.SIGHUP)
        gw.wait_log("reload: camera small: minima changed", 10)
        (restored,) = wait_until(lambda: watcher.events("compliance_restored"), HOLD + 5, "back")
        assert (restored["camera"], restored["rule"], restored["minimum"]) == (
            "small",
            "resolution",
            "320x240",
        )
        gw.wait_log("camera small: picture size back to 320x240 (minimum 320x240)")
        assert gw.workers() == workers
    finally:
        watcher.close()
