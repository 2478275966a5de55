"""Camera integrity as people and machines read it: the status document and table, the MQTT
camera status and the Prometheus exposition, built from the supervisor's mirror of a camera
(its ``tamper`` and its forward held back while a privacy mask is missing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.daemon.workers.handle import MASK_MISSING
from gateway.telemetry.metrics import TAMPER_KINDS, MetricsSnapshot, metrics_registry
from gateway.telemetry.mqtt.payloads import camera_payload, significant
from gateway.telemetry.state import CameraStatus, ForwardStatus, Shift, TamperStatus
from gateway.telemetry.statusview import render_status, status_document, summary

SITE = "res-0042"
INTEGRITY_SERIES = (
    "camera_gateway_camera_tamper",
    "camera_gateway_camera_displacement_ratio",
    "camera_gateway_camera_analysis_learning",
    "camera_gateway_camera_analysed_keyframes_total",
    "camera_gateway_privacy_mask_ok",
)


def camera(
    name: str,
    tamper: TamperStatus | None = None,
    forward: ForwardStatus | None = None,
) -> CameraStatus:
    """An online camera as the supervisor mirrors it; not analysed unless ``tamper`` says."""
    status = CameraStatus(id=name, url=f"rtsp://10.0.0.7/{name}", state="online")
    status.codec, status.width, status.height, status.fps = "h264", 1920, 1080, 25.0
    if tamper is not None:
        status.tamper = tamper
    if forward is not None:
        status.forward = forward
    return status


def analysed(**fields: object) -> TamperStatus:
    """A watched camera that has analysed keyframes, with ``fields`` set on it."""
    now = time.time()
    defaults: dict[str, object] = {
        "state": "ok",
        "since": now - 3600,
        "keyframes": 1800,
        "analysed_at": now - 1,
    }
    return TamperStatus(**{**defaults, **fields})  # type: ignore[arg-type]


def suspended_forward() -> ForwardStatus:
    """An on-demand session the box holds back because a privacy mask is missing."""
    return ForwardStatus(
        mode="on_demand",
        state="suspended",
        error=MASK_MISSING,
        session_id="s-4512",
        requested_by="CSU Lyon, operator 7",
        suspended=MASK_MISSING,
    )


def table(*cameras: CameraStatus) -> str:
    return render_status(status_document(SITE, cameras, None, uptime=60.0))


def camera_lines(text: str, name: str) -> list[str]:
    """The camera's row and the problem lines under it."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split(" ", 1)[0] == name)
    rest = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith(" "):
            break
        rest.append(line)
    return rest


def column(text: str, name: str, title: str) -> str:
    """The camera's cell under ``title`` (up to the next column's title)."""
    header = next(line for line in text.splitlines() if line.startswith("camera "))
    start = header.index(title)
    after = header.find(" ", start + len(title))
    row = camera_lines(text, name)[0]
    if after < 0:  # the last column runs to the end of the row
        return row[start:].strip()
    following = len(header) - len(header[after:].lstrip())
    return row[start:following].strip()


def exposition(*cameras: CameraStatus) -> str:
    snapshot = MetricsSnapshot(site_id=SITE, cameras=cameras, storage=None)
    return generate_latest(metrics_registry(lambda: snapshot)).decode()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(sample name, labels) -> value, as Prometheus' own parser reads the exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, frozenset(labels.items()))]


def series_of(text: str, camera_id: str) -> set[str]:
    """Names of the samples carrying the camera's label."""
    return {name for name, labels in samples(text) if ("camera", camera_id) in labels}


# -- a covered camera, a moved one ---------------------------------------------------------------


def test_a_covered_camera_shows_covered_everywhere_with_since_when() -> None:
    since = time.time() - 750
    hall = camera("hall", analysed(state="covered", since=since, conditions=("covered",)))

    text = table(hall)
    assert column(text, "hall", "tamper") == "covered"
    problems = camera_lines(text, "hall")[1:]
    assert len(problems) == 1, problems
    assert "! picture covered (uniform or black) since " in problems[0]
    assert " UTC (12m30s ago)" in problems[0]

    (document,) = status_document(SITE, [hall], None, uptime=60.0)["cameras"]
    tamper = document["tamper"]
    assert tamper["state"] == "covered" and tamper["conditions"] == ["covered"]
    assert tamper["since"].endswith("Z") and tamper["keyframes"] == 1800
    assert camera_payload(hall)["tamper"] == tamper

    metrics = exposition(hall)
    assert value(metrics, "camera_gateway_camera_tamper", camera="hall", kind="covered") == 1
    for kind in ("defocused", "moved"):
        assert value(metrics, "camera_gateway_camera_tamper", camera="hall", kind=kind) == 0
    assert value(metrics, "camera_gateway_camera_displacement_ratio", camera="hall") == 0
    assert value(metrics, "camera_gateway_camera_analysed_keyframes_total", camera="hall") == 1800


def test_a_moved_camera_shows_how_far_it_moved() -> None:
    shift = Shift(dx=153.64, dy=-20.02, percent=12.14, rotation=3.217)
    hall = camera("hall", analysed(state="moved", conditions=("moved",), shift=shift))

    text = table(hall)
    assert column(text, "hall", "tamper") == "moved 12%"
    (problem,) = camera_lines(text, "hall")[1:]
    assert "camera moved off its learned view (shift 12.1 % of the width, +3.2°) since" in problem
    (document,) = status_document(SITE, [hall], None, uptime=60.0)["cameras"]
    assert document["tamper"]["shift"] == {
        "dx_px": 153.6,
        "dy_px": -20.0,
        "percent": 12.14,
        "rotation_deg": 3.22,
    }
    assert camera_payload(hall)["tamper"]["shift"] == document["tamper"]["shift"]
    metrics = exposition(hall)
    assert value(metrics, "camera_gateway_camera_tamper", camera="hall", kind="moved") == 1
    ratio = value(metrics, "camera_gateway_camera_displacement_ratio", camera="hall")
    assert ratio == pytest.approx(0.1214)


def test_a_moved_camera_out_of_focus_shows_defocused_and_raises_both_kinds() -> None:
    # The monitor's precedence: the blur explains a failed match, so the state is defocused,
    # but both conditions are raised and both alerts must be able to fire.
    hall = camera("hall", analysed(state="defocused", conditions=("defocused", "moved")))

    text = table(hall)
    assert column(text, "hall", "tamper") == "defocused"
    problems = camera_lines(text, "hall")[1:]
    assert [p.split("! ", 1)[1].split(" since")[0] for p in problems] == [
        "picture out of focus",
        "camera moved off its learned view",
    ]
    metrics = exposition(hall)
    tamper = {
        kind: value(metrics, "camera_gateway_camera_tamper", camera="hall", kind=kind)
        for kind in TAMPER_KINDS
    }
    assert tamper == {"covered": 0, "defocused": 1, "moved": 1}


def test_a_camera_learning_its_view_raises_nothing_and_says_so() -> None:
    hall = camera("hall", analysed(state="learning", keyframes=3))

    text = table(hall)
    assert column(text, "hall", "tamper") == "learning"
    assert camera_lines(text, "hall")[1:] == []
    metrics = exposition(hall)
    assert value(metrics, "camera_gateway_camera_analysis_learning", camera="hall") == 1
    assert value(metrics, "camera_gateway_camera_analysed_keyframes_total", camera="hall") == 3
    for kind in TAMPER_KINDS:
        assert value(metrics, "camera_gateway_camera_tamper", camera="hall", kind=kind) == 0


def test_keyframes_that_cannot_be_analysed_are_a_problem_line() -> None:
    error = "keyframes in mjpeg cannot be analysed (H.264 or H.265 only)"
    hall = camera("hall", TamperStatus(state="unknown", error=error))

    text = table(hall)
    assert column(text, "hall", "tamper") == "unknown"
    assert camera_lines(text, "hall")[1:] == [f"{'':<14}! picture integrity not analysed: {error}"]
    assert camera_payload(hall)["tamper"]["error"] == error


# -- a camera not analysed -----------------------------------------------------------------------


def test_a_camera_with_analysis_off_exports_no_integrity_series() -> None:
    watched = camera("hall", analysed())
    unwatched = camera("yard")  # analysis.enabled: false

    metrics = exposition(watched, unwatched)
    assert not series_of(metrics, "yard") & set(INTEGRITY_SERIES)
    assert series_of(metrics, "hall") >= set(INTEGRITY_SERIES) - {"camera_gateway_privacy_mask_ok"}
    # its forward is still exported like every camera's
    assert value(metrics, "camera_gateway_forward_suspended", camera="yard") == 0
    text = table(watched, unwatched)
    assert column(text, "yard", "tamper") == "off"
    assert column(text, "hall", "tamper") == "ok"
    (document,) = status_document(SITE, [unwatched], None, uptime=60.0)["cameras"]
    assert document["tamper"] == {
        "state": "off",
        "since": None,
        "conditions": [],
        "shift": None,
        "privacy": "none",
        "unmasked": [],
        "error": None,
        "keyframes": 0,
        "analysed_at": None,
    }
    assert document["forward"]["suspended"] is None


# -- privacy masks -------------------------------------------------------------------------------


def test_a_missing_privacy_mask_shows_the_suspended_forward_and_why() -> None:
    hall = camera(
        "hall",
        analysed(conditions=("privacy_mask_missing",), privacy="missing", unmasked=("door-12",)),
        suspended_forward(),
    )

    text = table(hall)
    assert column(text, "hall", "tamper") == "mask!"
    assert column(text, "hall", "forward") == "suspended"
    problems = camera_lines(text, "hall")[1:]
    # said once, with the zone, not once more as the forward's error
    assert problems == [
        f"{'':<14}! privacy mask missing in zone door-12: forward suspended, recording goes on"
    ]
    (document,) = status_document(SITE, [hall], None, uptime=60.0)["cameras"]
    assert document["forward"]["state"] == "suspended"
    assert document["forward"]["suspended"] == MASK_MISSING
    assert document["tamper"]["privacy"] == "missing"
    assert document["tamper"]["unmasked"] == ["door-12"]

    payload = camera_payload(hall)
    assert payload["forward"] == "suspended" and payload["forward_suspended"] == MASK_MISSING
    assert payload["tamper"]["conditions"] == ["privacy_mask_missing"]

    metrics = exposition(hall)
    assert value(metrics, "camera_gateway_privacy_mask_ok", camera="hall") == 0
    assert value(metrics, "camera_gateway_forward_suspended", camera="hall") == 1
    assert value(metrics, "camera_gateway_forward_active", camera="hall") == 1
    assert value(metrics, "camera_gateway_forward_up", camera="hall") == 0
    # a missing mask is no tamper kind: it has its own alert
    for kind in TAMPER_KINDS:
        assert value(metrics, "camera_gateway_camera_tamper", camera="hall", kind=kind) == 0


def test_a_missing_mask_without_a_session_says_no_forward_goes_until_it_is_back() -> None:
    held = ForwardStatus(mode="on_demand", state="off", suspended=MASK_MISSING)
    hall = camera(
        "hall",
        analysed(privacy="missing", unmasked=("door-12", "door-14")),
        held,
    )

    (problem,) = camera_lines(table(hall), "hall")[1:]
    assert problem.endswith(
        "! privacy mask missing in zones door-12, door-14: "
        "no forward to the centre until it is back"
    )
    assert value(exposition(hall), "camera_gateway_forward_suspended", camera="hall") == 0


def test_a_camera_forwarded_unmasked_by_configuration_says_so() -> None:
    live = ForwardStatus(mode="continuous", state="live")
    hall = camera("hall", analysed(privacy="missing", unmasked=("door-12",)), live)

    text = table(hall)
    assert column(text, "hall", "forward") == "live"
    (problem,) = camera_lines(text, "hall")[1:]
    assert problem.endswith(
        "! privacy mask missing in zone door-12 (forward_when_unmasked: the forward is not held "
        "back)"
    )


def test_privacy_mask_ok_is_exported_only_for_cameras_whose_masks_were_judged() -> None:
    cameras = (
        camera("no-zone", analysed(privacy="none")),
        camera("not-yet", TamperStatus(state="unknown", privacy="unknown")),
        camera("masked", analysed(privacy="ok")),
        camera("unmasked", analysed(privacy="missing", unmasked=("door-12",))),
    )

    metrics = exposition(*cameras)
    exported = {
        dict(labels)["camera"]: found
        for (name, labels), found in samples(metrics).items()
        if name == "camera_gateway_privacy_mask_ok"
    }
    assert exported == {"masked": 1.0, "unmasked": 0.0}


# -- MQTT: what is published at once -------------------------------------------------------------


def test_a_tamper_state_or_a_mask_change_is_published_at_once_a_new_shift_is_not() -> None:
    hall = camera("hall", analysed(shift=Shift(1.0, 0.0, 0.1, 0.0)))
    before = significant(camera_payload(hall))

    hall.tamper.shift = Shift(3.0, 1.0, 0.3, 0.2)
    hall.tamper.keyframes += 1
    hall.tamper.analysed_at = time.time()
    assert significant(camera_payload(hall)) == before

    hall.tamper.state, hall.tamper.conditions = "covered", ("covered",)
    covered = significant(camera_payload(hall))
    assert covered != before

    hall.tamper.privacy = "missing"
    assert significant(camera_payload(hall)) != covered

    hall.forward = suspended_forward()
    assert significant(camera_payload(hall)) != covered


# -- the table, the summary, older daemons -------------------------------------------------------


def test_the_tamper_column_keeps_the_forward_column_aligned() -> None:
    shift = Shift(dx=400.0, dy=0.0, percent=100.0, rotation=0.0)
    cameras = (
        camera("hall", analysed(state="moved", conditions=("moved",), shift=shift)),
        camera("yard", analysed(state="defocused", conditions=("defocused",))),
        camera("lift", analysed(privacy="missing"), suspended_forward()),
        camera("cave", forward=ForwardStatus(mode="continuous", state="live")),
    )

    text = table(*cameras)
    header = next(line for line in text.splitlines() if line.startswith("camera "))
    at = header.index("forward")
    assert header.index("tamper") + 11 == at, "the tamper column is 11 characters wide"
    assert column(text, "hall", "tamper") == "moved 100%"
    for name, shown in (("lift", "suspended"), ("cave", "live")):
        row = camera_lines(text, name)[0]
        assert row[at:] == shown, row
        assert row[at - 1] == " ", row


def test_the_summary_counts_tampered_and_unmasked_cameras() -> None:
    cameras = (
        camera("hall", analysed(state="covered", conditions=("covered",))),
        camera("yard", analysed(state="moved", conditions=("moved",))),
        camera("lift", analysed(privacy="missing")),
        camera("cave", analysed(state="learning")),
    )

    snapshot = MetricsSnapshot(site_id=SITE, cameras=cameras, storage=None)
    assert summary(snapshot) == (
        "4/4 cameras online, 0 recording, 2 tampered, 1 missing a privacy mask"
    )


def test_a_status_document_from_an_older_daemon_still_renders() -> None:
    hall = camera("hall", analysed())
    document = status_document(SITE, [hall], None, uptime=60.0)
    for entry in document["cameras"]:
        del entry["tamper"]
        del entry["forward"]["suspended"]

    text = render_status(document)
    assert column(text, "hall", "tamper") == "-"


def test_an_analysis_error_is_escaped_before_the_terminal() -> None:
    hall = camera("hall", TamperStatus(state="unknown", error="decoder said \x1b[2J\u202eboo"))

    (problem,) = camera_lines(table(hall), "hall")[1:]
    assert "decoder said \\x1b[2J\\u202eboo" in problem
    assert all(c.isprintable() for c in problem)


# -- the exposition as Prometheus' own linter reads it -------------------------------------------


def test_the_integrity_series_pass_promtool_check_metrics() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        message = "promtool not found (Debian package `prometheus`)"
        if os.environ.get("CAMERA_GATEWAY_STRICT") == "1":
            pytest.fail(message)
        pytest.skip(message)
    cameras = (
        camera("hall", analysed(state="moved", shift=Shift(10.0, 2.0, 5.5, 1.0))),
        camera("lift", analysed(privacy="missing", unmasked=("door-12",)), suspended_forward()),
        camera("yard"),
    )

    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition(*cameras),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "" and result.stderr == "", result.stdout + result.stderr
