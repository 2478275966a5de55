"""Tests for gateway.config: loading, validation, secrets, error text and warnings."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, urlsplit

import pydantic
import pytest

from gateway.config import (
    CameraConfig,
    Config,
    ConfigError,
    MetricsConfig,
    config_warnings,
    load_config,
    parse_config,
)
from gateway.redact import redact

GIB = 1024**3
DAY = 86400.0
LEGAL_REASON = (
    "exceeds the legal maximum of 30 days "
    "(images kept at most one month, Code de la sécurité intérieure L252-5)"
)

FULL = """\
site_id: res-0042
storage:
  path: /var/lib/camera-gateway
  quota: 200GiB
  max_age: 15d
  min_free: 500MB
  segment_duration: 90s
cameras:
  - id: hall-a
    url: rtsp://10.0.0.11:554/stream1
    username: viewer
    password: ${CAM_PASS}
    record: true
    audio: false
  - id: garage_2
    url: rtsps://[fd00::12]:322/live
    username: admin
    password_file: /CREDS/garage
  - id: sim-1
    url: sim://hall-a?fps=15
    record: false
metrics:
  listen: "[::1]:9200"
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def minimal(**storage: object) -> dict[str, Any]:
    return {"site_id": "res-1", "storage": {"path": "/srv/rec", "quota": "10GiB", **storage}}


def with_camera(**camera: object) -> dict[str, Any]:
    data = minimal()
    data["cameras"] = [{"id": "cam", "url": "rtsp://10.0.0.5/s", **camera}]
    return data


def problems_of(data: dict[str, Any], base_dir: Path = Path("/")) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir=base_dir)
    return info.value.problems


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("CAM_PASS", raising=False)


# --- valid files and defaults ------------------------------------------------------------------


def test_full_valid_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "garage").write_text("garage-secret\n", encoding="utf-8")
    monkeypatch.setenv("CAM_PASS", "env-secret")
    config = load_config(write(tmp_path, FULL.replace("/CREDS", str(creds))))

    assert isinstance(config, Config)
    assert config.site_id == "res-0042"
    assert config.storage.path == Path("/var/lib/camera-gateway")
    assert config.storage.quota == 200 * GIB
    assert isinstance(config.storage.quota, int)
    assert config.storage.max_age == 15 * DAY
    assert config.storage.min_free == 500_000_000
    assert config.storage.segment_duration == 90.0
    assert [camera.id for camera in config.cameras] == ["hall-a", "garage_2", "sim-1"]

    hall = config.camera("hall-a")
    assert hall.url == "rtsp://10.0.0.11:554/stream1"
    assert hall.username == "viewer"
    assert hall.password is not None
    assert hall.password.get_secret_value() == "env-secret"
    assert hall.password_file is None
    assert (hall.record, hall.audio) == (True, False)

    garage = config.camera("garage_2")
    assert garage.password is not None
    assert garage.password.get_secret_value() == "garage-secret"
    assert garage.password_file == creds / "garage"
    assert garage.source_url() == "rtsps://admin:garage-secret@[fd00::12]:322/live"

    sim = config.camera("sim-1")
    assert sim.url == "sim://hall-a?fps=15"
    assert sim.record is False
    assert sim.password is None
    assert sim.source_url() == sim.url == sim.display_url

    assert (config.metrics.host, config.metrics.port) == ("::1", 9200)
    with pytest.raises(KeyError):
        config.camera("nope")


def test_defaults() -> None:
    config = parse_config(minimal(), base_dir=Path("/"))
    assert config.storage.max_age == 30 * DAY
    assert config.storage.min_free == GIB
    assert config.storage.segment_duration == 60.0
    assert config.cameras == ()
    assert config.metrics == MetricsConfig()
    assert config.metrics.listen == "127.0.0.1:9108"
    assert (config.metrics.host, config.metrics.port) == ("127.0.0.1", 9108)

    camera = parse_config(with_camera(), base_dir=Path("/")).cameras[0]
    assert (camera.record, camera.audio) == (True, False)
    assert (camera.username, camera.password, camera.password_file) == (None, None, None)


def test_empty_sections_mean_defaults(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """\
            site_id: res-1
            storage: {path: /srv, quota: 1GiB}
            cameras:
            #  - id: hall-a
            metrics:
            """,
        )
    )
    assert config.cameras == ()
    assert config.metrics.port == 9108


def test_numbers_mean_bytes_and_seconds() -> None:
    storage = parse_config(
        minimal(quota=5000, max_age=3600, min_free=0, segment_duration=1.5), base_dir=Path("/")
    ).storage
    assert (storage.quota, storage.max_age, storage.min_free) == (5000, 3600.0, 0)
    assert storage.segment_duration == 1.5


def test_models_are_frozen() -> None:
    config = parse_config(minimal(), base_dir=Path("/"))
    with pytest.raises(pydantic.ValidationError):
        config.site_id = "other"


# --- validation errors -------------------------------------------------------------------------


def test_unknown_key_at_top_level() -> None:
    data = minimal()
    data["colour"] = "blue"
    assert problems_of(data) == [
        "colour: unknown key "
        "(allowed: site_id, timezone, storage, cameras, minimum, analysis, metrics, uplink, "
        "control, mqtt, workers, audit)"
    ]


def test_unknown_key_in_camera_names_the_field_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        site_id: res-1
        storage: {path: /srv, quota: 1GiB}
        cameras:
          - {id: a, url: "rtsp://10.0.0.1/s"}
          - {id: b, url: "rtsp://10.0.0.2/s", pasword: x}
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        "cameras[1].pasword: unknown key "
        "(allowed: id, url, username, password, password_file, record, audio, forward, "
        "forward_url, tls, max_bitrate, minimum, analysis)"
    ]
    assert info.value.path == path
    assert str(info.value) == info.value.problems[0]


def test_one_line_per_problem() -> None:
    data = minimal(quota="0", max_age="0s")
    data["site_id"] = "Res.1"
    problems = problems_of(data)
    assert len(problems) == 3
    assert problems[0].startswith("site_id: invalid site id 'Res.1'")
    assert "storage.quota: must be greater than 0" in problems
    assert "storage.max_age: must be greater than 0" in problems


def test_missing_required_keys() -> None:
    assert problems_of({"storage": {"path": "/srv"}}) == [
        "site_id: required key is missing",
        "storage.quota: required key is missing",
    ]


def test_bad_size_unit() -> None:
    [problem] = problems_of(minimal(quota="200XB"))
    assert problem.startswith("storage.quota: invalid size '200XB'")
    assert "Value error" not in problem


def test_bad_duration_unit() -> None:
    [problem] = problems_of(minimal(max_age="3weeks"))
    assert problem.startswith("storage.max_age: invalid duration '3weeks'")


def test_max_age_above_thirty_days_is_refused_with_the_legal_reason() -> None:
    [problem] = problems_of(minimal(max_age="31d"))
    assert problem == f"storage.max_age: 31 days {LEGAL_REASON}"
    [problem] = problems_of(minimal(max_age=30 * DAY + 1))
    assert problem.endswith(LEGAL_REASON)
    assert parse_config(minimal(max_age="30d"), base_dir=Path("/")).storage.max_age == 30 * DAY


@pytest.mark.parametrize("value", ["0.5s", "0s", "3601s", "2h"])
def test_segment_duration_out_of_range(value: str) -> None:
    [problem] = problems_of(minimal(segment_duration=value))
    assert problem.startswith("storage.segment_duration: must be between 1s and 1h")


@pytest.mark.parametrize(("value", "seconds"), [("1s", 1.0), ("1h", 3600.0)])
def test_segment_duration_bounds_are_allowed(value: str, seconds: float) -> None:
    config = parse_config(minimal(segment_duration=value), base_dir=Path("/"))
    assert config.storage.segment_duration == seconds


def test_duplicate_camera_ids() -> None:
    data = minimal()
    data["cameras"] = [
        {"id": "hall-a", "url": "rtsp://10.0.0.1/s"},
        {"id": "porch", "url": "rtsp://10.0.0.2/s"},
        {"id": "hall-a", "url": "rtsp://10.0.0.3/s"},
    ]
    assert problems_of(data) == [
        "cameras: duplicate camera id 'hall-a' (cameras[0] and cameras[2])"
    ]


@pytest.mark.parametrize("camera_id", ["Hall", "hall a", "", "a" * 33, "hall.a"])
def test_bad_camera_id(camera_id: str) -> None:
    [problem] = problems_of(with_camera(id=camera_id))
    assert problem.startswith(f"cameras[0].id: invalid camera id {camera_id!r}")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.5/s", "scheme 'http' not allowed"),
        ("10.0.0.5/stream", "scheme missing not allowed"),
        ("rtsp:///stream1", "missing host"),
        ("sim://", "sim:// URL needs a name"),
        ("rtsp://10.0.0.5:70000/s", "not a valid URL (invalid port)"),
        ("rtsp://[::1/s", "not a valid URL"),
    ],
)
def test_bad_camera_url(url: str, reason: str) -> None:
    [problem] = problems_of(with_camera(url=url))
    assert problem.startswith(f"cameras[0].url: {reason}")


@pytest.mark.parametrize(
    ("listen", "reason"),
    [
        ("9108", "invalid address"),
        ("::1:9108", "IPv6 addresses go in brackets"),
        ("127.0.0.1:0", "invalid port"),
        ("127.0.0.1:65536", "invalid port"),
        ("[nope]:9108", "invalid IPv6 address"),
    ],
)
def test_bad_metrics_listen(listen: str, reason: str) -> None:
    data = minimal()
    data["metrics"] = {"listen": listen}
    [problem] = problems_of(data)
    assert problem.startswith(f"metrics.listen: {reason}")


def test_metrics_listen_accepts_hostnames() -> None:
    metrics = MetricsConfig(listen="gateway.lan:65535")
    assert (metrics.host, metrics.port) == ("gateway.lan", 65535)


# --- secrets -----------------------------------------------------------------------------------


def test_password_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_PASS", "from-env-42")
    camera = parse_config(with_camera(password="${CAM_PASS}"), base_dir=Path("/")).cameras[0]
    assert camera.password is not None
    assert camera.password.get_secret_value() == "from-env-42"
    assert redact("said from-env-42") == "said ***"


def test_password_only_whole_value_is_a_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_PASS", "unused")
    camera = parse_config(with_camera(password="x${CAM_PASS}"), base_dir=Path("/")).cameras[0]
    assert camera.password is not None
    assert camera.password.get_secret_value() == "x${CAM_PASS}"


def test_missing_environment_variable() -> None:
    assert problems_of(with_camera(password="${CAM_PASS}")) == [
        "cameras[0].password: environment variable CAM_PASS is not set"
    ]


def test_password_file_relative_to_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "hall-a").write_text("from-creds-dir\n\n", encoding="utf-8")
    (tmp_path / "hall-a").write_text("from-config-dir\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    camera = parse_config(with_camera(password_file="hall-a"), base_dir=tmp_path).cameras[0]
    assert camera.password is not None
    # Exactly one trailing newline is dropped.
    assert camera.password.get_secret_value() == "from-creds-dir\n"
    assert camera.password_file == Path("hall-a")


def test_password_file_relative_to_config_directory(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "cam").write_text("from-config-dir\r\n", encoding="utf-8")
    path = write(
        tmp_path,
        """\
        site_id: res-1
        storage: {path: /srv, quota: 1GiB}
        cameras:
          - {id: cam, url: "rtsp://10.0.0.1/s", password_file: secrets/cam}
        """,
    )
    camera = load_config(path).cameras[0]
    assert camera.password is not None
    assert camera.password.get_secret_value() == "from-config-dir"
    assert redact("login from-config-dir refused") == "login *** refused"


def test_password_file_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    [problem] = problems_of(with_camera(password_file="absent"), base_dir=Path("/elsewhere"))
    assert problem.startswith(f"cameras[0].password_file: cannot read {tmp_path / 'absent'}")
    assert "No such file or directory" in problem


def test_password_file_content_never_in_errors(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("file-secret-913\n", encoding="utf-8")
    data = with_camera(password_file=str(secret_file))
    data["storage"]["quota"] = "lots"
    [problem] = problems_of(data)
    assert problem.startswith("storage.quota: invalid size")
    assert "file-secret-913" not in problem


def test_password_and_password_file_are_exclusive(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("x", encoding="utf-8")
    assert problems_of(with_camera(password="abc", password_file=str(tmp_path / "pw"))) == [
        "cameras[0].password_file: password and password_file are mutually exclusive"
    ]


def test_secret_never_in_config_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        site_id: res-1
        storage: {path: /srv, quota: 10XB}
        cameras:
          - id: a
            url: rtsp://10.0.0.1/s
            password: literal-secret-555
            colour: red
          - id: b
            url: http://admin:url-secret-777@10.0.0.2/s
          - id: c
            url: rtsp://admin:url-secret-888@10.0.0.3:bad/s
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert len(info.value.problems) == 4
    assert "cameras[1].url: scheme 'http' not allowed" in text
    assert "cameras[2].url: not a valid URL (invalid port)" in text
    for secret in ("literal-secret-555", "url-secret-777", "url-secret-888"):
        assert secret not in text
        assert secret not in repr(info.value)
    assert info.value.__suppress_context__


# --- credentials in the URL and URL rendering ----------------------------------------------------


def test_credentials_in_url_are_moved_out() -> None:
    data = with_camera(url="rtsp://viewer:url-pass-321@10.0.0.11:554/stream1")
    camera = parse_config(data, base_dir=Path("/")).cameras[0]
    assert camera.url == "rtsp://10.0.0.11:554/stream1"
    assert camera.username == "viewer"
    assert camera.password is not None
    assert camera.password.get_secret_value() == "url-pass-321"
    assert camera.display_url == "rtsp://viewer:***@10.0.0.11:554/stream1"
    assert camera.source_url() == "rtsp://viewer:url-pass-321@10.0.0.11:554/stream1"
    config = parse_config(data, base_dir=Path("/"))
    for text in (repr(camera), str(camera), repr(config), str(config), camera.display_url):
        assert "url-pass-321" not in text
    assert redact("connect url-pass-321 failed") == "connect *** failed"


def test_url_password_is_not_an_environment_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_PASS", "from-env")
    camera = parse_config(
        with_camera(url="rtsp://u:%24%7BCAM_PASS%7D@10.0.0.1/s"), base_dir=Path("/")
    ).cameras[0]
    assert camera.password is not None
    assert camera.password.get_secret_value() == "${CAM_PASS}"


def test_url_user_only_combines_with_password_key() -> None:
    camera = parse_config(
        with_camera(url="rtsp://viewer@10.0.0.1/s", password="key-pass"), base_dir=Path("/")
    ).cameras[0]
    assert camera.url == "rtsp://10.0.0.1/s"
    assert camera.source_url() == "rtsp://viewer:key-pass@10.0.0.1/s"


@pytest.mark.parametrize(
    "extra", [{"username": "other"}, {"password": "other-pass"}, {"password_file": "/nope"}]
)
def test_credentials_given_twice(extra: dict[str, str]) -> None:
    data = with_camera(url="rtsp://viewer:twice-secret-1@10.0.0.1/s", **extra)
    problems = problems_of(data)
    assert problems[0].startswith("cameras[0].url: credentials given twice")
    assert "twice-secret-1" not in "\n".join(problems)


def test_source_url_percent_encodes_the_password() -> None:
    password = "p@ss:w/rd?#%"
    camera = CameraConfig.model_validate(
        {
            "id": "cam",
            "url": "rtsp://10.0.0.11:554/stream1",
            "username": "vi ewer",
            "password": password,
        }
    )
    url = camera.source_url()
    assert url == "rtsp://vi%20ewer:p%40ss%3Aw%2Frd%3F%23%25@10.0.0.11:554/stream1"
    parts = urlsplit(url)
    assert parts.hostname == "10.0.0.11"
    assert parts.port == 554
    assert parts.password is not None
    assert unquote(parts.password) == password
    assert camera.display_url == "rtsp://vi%20ewer:***@10.0.0.11:554/stream1"
    assert password not in repr(camera)
    assert "**********" in repr(camera)


def test_encoded_url_credentials_are_decoded() -> None:
    camera = parse_config(
        with_camera(url="rtsp://admin:a%40b%3Ac@10.0.0.1/s"), base_dir=Path("/")
    ).cameras[0]
    assert camera.password is not None
    assert camera.password.get_secret_value() == "a@b:c"
    assert camera.source_url() == "rtsp://admin:a%40b%3Ac@10.0.0.1/s"


# --- file-level errors -----------------------------------------------------------------------


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        site_id: res-1
        storage:
          path: /srv
            quota: "yaml-secret-404
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    [problem] = info.value.problems
    assert problem.startswith(f"{path}: invalid YAML at line 4, column ")
    assert "yaml-secret-404" not in problem


def test_yaml_duplicate_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "site_id: a\nsite_id: b\nstorage: {path: /srv, quota: 1GiB}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        f"{path}: invalid YAML at line 2, column 1: key 'site_id' given twice"
    ]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.yaml")
    assert info.value.problems == [f"{tmp_path / 'absent.yaml'}: file not found"]


def test_unreadable_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read: Is a directory"):
        load_config(tmp_path)


@pytest.mark.parametrize(("text", "reason"), [("", "is empty"), ("- a\n- b\n", "got a list")])
def test_not_a_mapping(tmp_path: Path, text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as info:
        load_config(write(tmp_path, text))
    assert str(tmp_path) in str(info.value)


# --- warnings ----------------------------------------------------------------------------------


def fake_statvfs(total_bytes: int) -> Any:
    def statvfs(path: object) -> SimpleNamespace:
        return SimpleNamespace(f_blocks=total_bytes // 4096, f_frsize=4096)

    return statvfs


def test_warning_quota_larger_than_filesystem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage_path = tmp_path / "not" / "yet" / "created"
    config = parse_config(
        {"site_id": "res-1", "storage": {"path": str(storage_path), "quota": "200GiB"}},
        base_dir=tmp_path,
    )
    checked: list[object] = []

    def statvfs(path: object) -> SimpleNamespace:
        checked.append(path)
        return SimpleNamespace(f_blocks=50 * GIB // 4096, f_frsize=4096)

    monkeypatch.setattr(os, "statvfs", statvfs)
    assert config_warnings(config) == [
        f"storage.quota (200.0 GiB) is larger than the filesystem at {tmp_path} (50.0 GiB): "
        "retention will be driven by min_free"
    ]
    assert checked == [tmp_path]


def test_warning_min_free_larger_than_filesystem(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config(minimal(quota="100MiB", min_free="1GiB"), base_dir=Path("/"))
    monkeypatch.setattr(os, "statvfs", fake_statvfs(512 * 1024**2))
    [warning] = config_warnings(config)
    assert warning.startswith("storage.min_free (1.0 GiB) is larger than the filesystem at /")
    assert "(512.0 MiB)" in warning


def test_warning_quota_on_the_real_filesystem(tmp_path: Path) -> None:
    huge = parse_config(
        {"site_id": "res-1", "storage": {"path": str(tmp_path), "quota": "1000000TiB"}},
        base_dir=tmp_path,
    )
    [warning] = config_warnings(huge)
    assert warning.startswith("storage.quota (") and f"filesystem at {tmp_path} (" in warning
    small = parse_config(
        {"site_id": "res-1", "storage": {"path": str(tmp_path), "quota": "1MiB", "min_free": 0}},
        base_dir=tmp_path,
    )
    assert config_warnings(small) == []


def test_warning_password_over_plain_rtsp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "statvfs", fake_statvfs(10**15))
    data = minimal()
    data["cameras"] = [
        {"id": "plain", "url": "rtsp://u:pw-plain@10.0.0.1/s"},
        {"id": "tls", "url": "rtsps://u:pw-tls@10.0.0.2/s"},
        {"id": "nopass", "url": "rtsp://10.0.0.3/s"},
    ]
    [warning] = config_warnings(parse_config(data, base_dir=Path("/")))
    assert warning.startswith("cameras[0] (plain): ")
    assert "rtsps://" in warning
    assert "pw-plain" not in warning


# --- cameras[].tls -------------------------------------------------------------------------------

PIN = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


def rtsps_camera(**camera: object) -> dict[str, Any]:
    data = minimal()
    data["cameras"] = [{"id": "cam", "url": "rtsps://10.0.0.5/s", **camera}]
    return data


def test_camera_tls_defaults_to_the_system_cas() -> None:
    camera = parse_config(rtsps_camera(), base_dir=Path("/")).cameras[0]
    assert camera.tls is None
    tls = parse_config(rtsps_camera(tls={}), base_dir=Path("/")).cameras[0].tls
    assert tls is not None
    assert (tls.ca_file, tls.pin_sha256, tls.insecure) == (None, (), False)


def test_camera_tls_fields(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "cameras-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    data = rtsps_camera(tls={"ca_file": "pki/cameras-ca.pem", "pin_sha256": [f"sha256//{PIN}"]})
    camera = parse_config(data, base_dir=tmp_path).cameras[0]
    assert camera.tls is not None
    assert camera.tls.ca_file == tmp_path / "pki" / "cameras-ca.pem"  # next to the config file
    assert camera.tls.pin_sha256 == (PIN,)  # stored bare, as uplink.tls.pin_sha256
    insecure = parse_config(rtsps_camera(tls={"insecure": True}), base_dir=Path("/")).cameras[0]
    assert insecure.tls is not None and insecure.tls.insecure


@pytest.mark.parametrize(
    ("tls", "problem"),
    [
        (
            {"pin_sha256": ["sha256//AAAA"]},
            "cameras[0].tls.pin_sha256[0]: decodes to 3 bytes, a SHA-256 pin is 32 bytes",
        ),
        (
            {"ca_file": "missing-ca.pem"},
            "cameras[0].tls.ca_file: cannot read /missing-ca.pem: No such file or directory",
        ),
        (
            {"insecure": True, "pin_sha256": [PIN]},
            "cameras[0].tls.insecure: cannot be true together with pin_sha256 (insecure turns "
            "every check off): remove one or the other",
        ),
        (
            {"verify": False},
            "cameras[0].tls.verify: unknown key (allowed: ca_file, pin_sha256, insecure)",
        ),
        ({"insecure": "maybe"}, "cameras[0].tls.insecure: input should be a valid boolean"),
    ],
)
def test_bad_camera_tls(tls: dict[str, object], problem: str) -> None:
    problems = problems_of(rtsps_camera(tls=tls))
    assert problems[0].startswith(problem), problems


@pytest.mark.parametrize("url", ["rtsp://10.0.0.5/s", "sim://hall-a?fps=15"])
def test_tls_on_a_camera_without_rtsps_is_refused(url: str) -> None:
    scheme = url.split(":", 1)[0]
    data = minimal()
    data["cameras"] = [{"id": "cam", "url": url, "tls": {"insecure": True}}]
    assert problems_of(data) == [
        f"cameras[0].tls: applies to rtsps:// cameras only, not {scheme}:// "
        "(TLS settings need an rtsps:// url or forward_url)"
    ]


def test_tls_applies_to_an_rtsps_forward_url_of_an_rtsp_camera() -> None:
    data = with_camera(forward_url="rtsps://10.0.0.5/sub", tls={"pin_sha256": [PIN]})
    camera = parse_config(data, base_dir=Path("/")).cameras[0]
    assert camera.tls is not None and camera.tls.pin_sha256 == (PIN,)


def test_one_tls_policy_for_the_stream_and_the_substream() -> None:
    from gateway.source import camera_tls_policy
    from gateway.source.tls import TlsPolicy

    def policy(**tls: object) -> TlsPolicy:
        data = rtsps_camera(forward_url="rtsps://10.0.0.5/sub", **({"tls": tls} if tls else {}))
        return camera_tls_policy(parse_config(data, base_dir=Path("/")).cameras[0])

    assert policy() == TlsPolicy()
    assert policy(pin_sha256=[PIN]) == TlsPolicy(pins=(PIN,))
    assert policy(insecure=True) == TlsPolicy(verify=False)


# --- warnings about the camera link and the file ------------------------------------------------


def camera_warnings(*cameras: Mapping[str, object]) -> list[str]:
    data = minimal()
    data["cameras"] = list(cameras)
    config = parse_config(data, base_dir=Path("/"))
    return [w for w in config_warnings(config) if w.startswith("cameras[")]


def test_insecure_tls_is_warned_about_at_every_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "statvfs", fake_statvfs(10**15))
    with_password = {
        "id": "lobby",
        "url": "rtsps://u:pw-1234@10.0.0.2/s",
        "tls": {"insecure": True},
    }
    without = {"id": "yard", "url": "rtsps://10.0.0.3/s", "tls": {"insecure": True}}
    verified = {"id": "hall", "url": "rtsps://u:pw-5678@10.0.0.4/s"}
    assert camera_warnings(with_password, without, verified) == [
        "cameras[0] (lobby): TLS verification is off (tls.insecure): anyone on the LAN can "
        "impersonate the camera and receive its password",
        "cameras[1] (yard): TLS verification is off (tls.insecure): anyone on the LAN can "
        "impersonate the camera and have its own video recorded as the camera's",
    ]


def test_a_password_over_a_plain_substream_is_warned_about(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "statvfs", fake_statvfs(10**15))
    camera = {
        "id": "gate",
        "url": "rtsps://u:pw-1234@10.0.0.2/main",
        "forward_url": "rtsp://10.0.0.2/sub",
    }
    [warning] = camera_warnings(camera)
    assert warning == (
        "cameras[0] (gate): with plain rtsp:// (forward_url) anyone on the LAN posing as the "
        "camera receives its password (FFmpeg sends it in clear when asked for Basic "
        "authentication); use rtsps://, where the camera is verified before any request"
    )


CLEARTEXT = """\
site_id: res-1
storage: {path: /srv/rec, quota: 10GiB}
cameras:
  - {id: a, url: "rtsp://10.0.0.1/s", username: u, password: literal-pw}
  - {id: b, url: "rtsp://u:in-url-pw@10.0.0.2/s"}
  - {id: c, url: "rtsp://10.0.0.3/s?token=f00dcafe42", username: u, password: "${CAM_C}"}
  - {id: d, url: "rtsp://10.0.0.4/s", username: u, password_file: d.pw}
uplink: {url: "rtmp://csu.example.org/live/s3cr3tkey-{camera_id}"}
"""


def exposure(config: Config) -> list[str]:
    return [w for w in config_warnings(config) if "holds passwords in clear" in w]


def test_a_file_with_passwords_readable_by_others_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "statvfs", fake_statvfs(10**15))
    monkeypatch.setenv("CAM_C", "from-env-pw")
    (tmp_path / "d.pw").write_text("from-file-pw\n")
    path = write(tmp_path, CLEARTEXT)
    path.chmod(0o644)
    [warning] = exposure(load_config(path))
    assert warning == (
        f"{path}: holds passwords in clear (cameras[0].password, cameras[1].url, cameras[2].url, "
        "uplink.url) and is open to users other than its owner and group (mode 0644): "
        f"chmod 640 {path}, or move the passwords to password_file (systemd LoadCredential=)"
    )
    for secret in ("literal-pw", "in-url-pw", "f00dcafe42", "s3cr3tkey"):
        assert secret not in warning
    path.chmod(0o640)
    assert exposure(load_config(path)) == []


def test_a_file_without_passwords_in_clear_may_be_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "statvfs", fake_statvfs(10**15))
    monkeypatch.setenv("CAM_PASS", "from-env-pw")
    path = write(
        tmp_path,
        """\
        site_id: res-1
        storage: {path: /srv/rec, quota: 10GiB}
        cameras:
          - {id: a, url: "rtsps://10.0.0.1/s?channel=1", username: u, password: "${CAM_PASS}"}
        """,
    )
    path.chmod(0o604)
    config = load_config(path)
    assert config.file is not None and config.file.mode == 0o604
    assert exposure(config) == []
    assert parse_config(minimal(), base_dir=tmp_path).file is None  # not from a file: no check


def test_tokens_in_camera_urls_are_masked_everywhere() -> None:
    data = with_camera(
        url="rtsp://10.0.0.5/s?channel=1&token=cam-t0ken-123",
        forward_url="rtsp://10.0.0.5/sub?apikey=sub-k3y-456",
    )
    camera = parse_config(data, base_dir=Path("/")).cameras[0]
    assert redact("got cam-t0ken-123 and sub-k3y-456") == "got *** and ***"
    assert camera.display_url == "rtsp://10.0.0.5/s?channel=1&token=***"
    assert camera.source_url() == "rtsp://10.0.0.5/s?channel=1&token=cam-t0ken-123"


def test_bitrate_ceiling_defaults_well_above_real_streams_and_takes_units() -> None:
    config = parse_config(with_camera(), base_dir=Path("/"))
    assert config.cameras[0].max_bitrate == 50e6
    for text, value in (("8Mbit/s", 8e6), ("800kbit/s", 8e5), ("1.5 Gbit/s", 1.5e9), (2e6, 2e6)):
        camera = parse_config(with_camera(max_bitrate=text), base_dir=Path("/")).cameras[0]
        assert camera.max_bitrate == value, text


@pytest.mark.parametrize("value", ["50Mbps", "fast", -1, "1e400", "9" * 5000])
def test_bad_bitrate_is_refused_with_the_accepted_forms(value: object) -> None:
    [problem] = problems_of(with_camera(max_bitrate=value))
    assert problem.startswith("cameras[0].max_bitrate: ")
    assert len(problem) < 200


def test_worker_memory_cap_has_a_floor() -> None:
    data = minimal()
    data["workers"] = {"memory_max": "256MiB"}
    assert parse_config(data, base_dir=Path("/")).workers.memory_max == 256 * 2**20
    assert parse_config(minimal(), base_dir=Path("/")).workers.memory_max == 512 * 2**20
    data["workers"] = {"memory_max": "32MiB"}
    [problem] = problems_of(data)
    assert (
        problem
        == "workers.memory_max: must be at least 128MiB (a worker maps about 55 MiB at rest)"
    )


@pytest.mark.parametrize("camera_id", ["audit", "quarantine"])
def test_camera_ids_of_the_storage_tree_folders_are_reserved(camera_id: str) -> None:
    [problem] = problems_of(with_camera(id=camera_id))
    assert problem.startswith(f"cameras[0].id: camera id {camera_id!r} is reserved")
