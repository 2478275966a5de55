"""The Prometheus example in deploy/prometheus, checked by Debian's promtool.

The scrape configuration and the alerting rules must load, the rules' unit tests must pass (and
fail when a rule is broken), and every metric the rules use must exist in the exposition of a
live daemon, which promtool's linter must accept as it is.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import ROOT, StartGateway, free_port, wait_until, write_config

PROM_DIR = ROOT / "deploy" / "prometheus"
CONFIG = PROM_DIR / "prometheus.yml"
RULES = PROM_DIR / "camera-gateway.rules.yml"
RULE_TESTS = PROM_DIR / "camera-gateway.rules.test.yml"
TARGETS = PROM_DIR / "targets"

REQUIRED_ALERTS = {
    "CameraDown",
    "CameraBelowLegalMinimum",
    "CameraNotRecording",
    "StorageEvictingBeforeMaxAge",
    "StorageError",
    "ForwardFailing",
    "MqttDisconnected",
    "ClockUnsynchronised",
    "GatewayDown",
}
# Exposed only when an `mqtt:` section is configured; the live daemon below has none.
MQTT_ONLY = {"camera_gateway_mqtt_connected"}
ZONES_ONLY = {"camera_gateway_privacy_mask_ok"}
"""Exported only for cameras with privacy zones, once their masks are judged (none here)."""
METRIC_NAME = re.compile(r"camera_gateway_[a-z_]+")
SAMPLE_NAME = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s")


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = "promtool not found (Debian package `prometheus`)"
        if os.environ.get("CAMERA_GATEWAY_STRICT") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def promtool(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _copy_prometheus_dir(tmp_path: Path) -> Path:
    copy = tmp_path / "prometheus"
    shutil.copytree(PROM_DIR, copy)
    return copy


# -- (a) the scrape configuration ---------------------------------------------------------------


def test_config_is_valid_and_finds_its_rules_and_targets_relative_to_itself(
    tmp_path: Path,
) -> None:
    # Run from elsewhere: the rule file and the file_sd targets must be found relative to the
    # configuration file, as Prometheus resolves them, not to the working directory.
    result = promtool("check", "config", str(CONFIG), cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS: 1 rule files found" in output, output
    assert f"Checking {RULES}" in output, output
    # promtool warns (and still succeeds) when a file_sd pattern matches no file
    assert "WARNING" not in output, output


def test_config_scrapes_the_fleet_through_file_sd() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["rule_files"] == [RULES.name]
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "camera-gateway"]
    assert job["scrape_interval"] == "15s"
    assert job["file_sd_configs"] == [{"files": ["targets/*.yml"], "refresh_interval": "5m"}]
    groups = [group for path in TARGETS.glob("*.yml") for group in yaml.safe_load(path.read_text())]
    assert len(groups) == 2
    for group in groups:
        assert len(group["targets"]) == 1
        assert set(group["labels"]) == {"site", "residence_city"}
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", group["labels"]["site"])


def test_config_check_fails_without_its_rule_file(tmp_path: Path) -> None:
    # The check above can fail: the same configuration, copied alone, lacks its rules.
    shutil.copy(CONFIG, tmp_path / CONFIG.name)
    result = promtool("check", "config", CONFIG.name, cwd=tmp_path)
    assert result.returncode != 0
    assert "camera-gateway.rules.yml" in result.stdout + result.stderr


# -- (b) the rules ------------------------------------------------------------------------------


def test_rules_are_valid() -> None:
    result = promtool("check", "rules", RULES.name, cwd=PROM_DIR)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"SUCCESS: {len(_rules())} rules found" in output, output
    assert "WARNING" not in output, output


def test_every_alert_has_a_severity_and_explains_itself() -> None:
    rules = _rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), names
    assert set(names) >= REQUIRED_ALERTS
    assert {rule["labels"]["severity"] for rule in rules} <= {"critical", "warning"}
    for rule in rules:
        assert set(rule["annotations"]) == {"summary", "description"}, rule["alert"]
    by_name = {rule["alert"]: rule for rule in rules}
    assert by_name["StorageError"]["labels"]["severity"] == "critical"
    assert by_name["ForwardFailing"]["labels"]["severity"] == "critical"
    for name in ("CameraDown", "CameraNotRecording", "ForwardFailing"):
        assert "{{ $labels.camera }}" in by_name[name]["annotations"]["description"], name


# -- (c) the rules' unit tests ------------------------------------------------------------------


def test_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", RULE_TESTS.name, cwd=PROM_DIR)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS" in result.stdout, output


def test_rule_unit_tests_cover_firing_and_silence_of_every_alert() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == [RULES.name]
    firing: set[str] = set()
    silent: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            expected = check.get("exp_alerts") or []
            (firing if expected else silent).add(check["alertname"])
            for alert in expected:
                assert alert["exp_labels"]["severity"], check["alertname"]
                assert set(alert["exp_annotations"]) == {"summary", "description"}
    names = {rule["alert"] for rule in _rules()}
    assert firing == names, names ^ firing
    assert silent == names, names ^ silent


MUTATIONS = {
    # matching per camera only: box B's camera would borrow box A's "enabled"
    "camera matched across boxes": (
        "and on (job, instance, camera) camera_gateway_recording_enabled",
        "and on (camera) camera_gateway_recording_enabled",
    ),
    "max_age evictions counted": ('{reason=~"quota|min_free"}', ""),
    "no 90 % margin": ("< (0.9 * camera_gateway_storage_max_age_seconds)", "< (1.0 * 1e12)"),
    "forward without a session": (
        "camera_gateway_forward_active == 1",
        "camera_gateway_forward_active >= 0",
    ),
    "CameraDown without delay": ("for: 2m", "for: 0m"),
    "CameraBelowLegalMinimum without delay": ("for: 15m", "for: 0m"),
}


@pytest.mark.parametrize("mutation", MUTATIONS.values(), ids=list(MUTATIONS))
def test_rule_unit_tests_catch_a_broken_rule(tmp_path: Path, mutation: tuple[str, str]) -> None:
    old, new = mutation
    copy = _copy_prometheus_dir(tmp_path)
    rules = copy / RULES.name
    text = rules.read_text()
    assert text.count(old) >= 1, old
    rules.write_text(text.replace(old, new, 1))
    assert promtool("check", "rules", RULES.name, cwd=copy).returncode == 0
    result = promtool("test", "rules", RULE_TESTS.name, cwd=copy)
    assert result.returncode != 0, result.stdout
    assert "FAILED" in result.stdout + result.stderr


# -- (d) the live exposition --------------------------------------------------------------------


def _samples(exposition: str) -> dict[str, list[str]]:
    """Sample name -> the label sets it is exposed with."""
    samples: dict[str, list[str]] = {}
    for line in exposition.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE_NAME.match(line)
        assert match, line
        samples.setdefault(match.group(1), []).append(match.group(2) or "")
    return samples


def test_live_exposition_passes_promtool_and_has_every_metric_the_rules_use(
    tmp_path: Path, gateway: StartGateway
) -> None:
    cameras = [
        {"id": name, "url": f"sim://{name}?width=320&height=240&fps=10&gop=1"}
        for name in ("hall-a", "hall-b")
    ]
    config = write_config(
        tmp_path / "gw.yaml",
        tmp_path / "store",
        cameras,
        metrics_port=free_port(),
        storage={"segment_duration": "1s"},
    )
    gw = gateway(config)
    gw.wait_log("camera hall-a: online")
    gw.wait_log("camera hall-b: online")
    oldest = "camera_gateway_storage_oldest_recording_timestamp_seconds "

    def with_a_segment() -> str | None:
        # the oldest recording's timestamp is exposed once a first segment is indexed (~1 s)
        text = gw.metrics()
        return text if oldest in text else None

    exposition: str = wait_until(with_a_segment, 10, "a first segment")

    # (1) promtool's linter accepts the exposition as it is, without a word
    result = promtool("check", "metrics", cwd=tmp_path, stdin=exposition)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "" and result.stderr == "", result.stdout + result.stderr

    # (2) every metric the rules use is exposed. The exposition lists samples, so counters
    # appear as <name>_total, which is the name the rules use too.
    samples = _samples(exposition)
    rules = _rules()
    used = {name for rule in rules for name in METRIC_NAME.findall(rule["expr"])}
    assert len(used) >= 10, used
    assert used >= MQTT_ONLY
    assert not MQTT_ONLY & set(samples), "MQTT is not configured: no mqtt_connected expected"
    missing = sorted(used - MQTT_ONLY - ZONES_ONLY - set(samples))
    assert not missing, f"used by the rules, not exposed: {missing}"
    for name in used & set(samples):
        if name.endswith("_total"):
            assert f"# TYPE {name} counter" in exposition, name

    # (3) the labels the rules match on are there: `camera` on every per-camera metric, the
    # eviction reasons the rules select, and the box's own site on build_info
    for rule in rules:
        if "camera)" not in rule["expr"]:
            continue
        for name in METRIC_NAME.findall(rule["expr"]):
            labels = samples[name]
            for camera in ("hall-a", "hall-b"):
                assert any(f'camera="{camera}"' in label for label in labels), (name, camera)
    reasons = samples["camera_gateway_storage_evictions_total"]
    for reason in ("quota", "min_free", "max_age"):
        assert any(f'reason="{reason}"' in label for label in reasons), reason
    (build,) = samples["camera_gateway_build_info"]
    assert 'site="test-site"' in build, build
    for camera in ("hall-a", "hall-b"):
        assert f'camera_gateway_camera_up{{camera="{camera}"}} 1.0' in exposition, camera
