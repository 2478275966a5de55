"""Tests for the uplink, forwarding, control and audit settings of gateway.config."""

from __future__ import annotations

import base64
import hashlib
import os
import textwrap
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
    ControlConfig,
    UplinkConfig,
    UplinkTlsConfig,
    config_warnings,
    load_config,
    parse_config,
)
from gateway.redact import redact
from gateway.units import parse_duration

EMPTY_PIN = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="  # SHA-256 of b"", base64
OTHER_PIN = base64.b64encode(hashlib.sha256(b"csu").digest()).decode()
TEMPLATE = "rtsps://csu.example.org:8322/{site_id}/{camera_id}"
CONTINUOUS_WARNING = (
    "cameras[{index}] ({id}): forwards continuously to the centre; CCH L126-1-1 allows "
    "transmission to the police only in real time and for the time of an intervention — make "
    "sure an authorisation covers it"
)

FULL = """\
site_id: res-0042
storage:
  path: /var/lib/camera-gateway
  quota: 200GiB
uplink:
  url: rtsps://csu.example.org:8322/{site_id}/{camera_id}
  username: res-0042
  password: ${UPLINK_PASSWORD}
  tls:
    ca_file: tls/csu-ca.pem
    pin_sha256: ["sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "PIN2"]
    cert_file: tls/client.pem
    key_file: KEY
  max_session: 45m
  queue: 500ms
  connect_timeout: 30s
cameras:
  - id: hall-a
    url: rtsp://10.0.0.11/main
    forward: continuous
    forward_url: rtsp://10.0.0.11/sub
  - id: porch
    url: rtsp://10.0.0.12/main
  - id: garage
    url: rtsp://10.0.0.13/main
    forward: off
control:
  socket: /run/cg/control.sock
audit:
  path: /var/log/camera-gateway/audit
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("UPLINK_PASSWORD", raising=False)


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def minimal(**sections: object) -> dict[str, Any]:
    return {"site_id": "res-1", "storage": {"path": "/srv/rec", "quota": "10GiB"}, **sections}


def with_uplink(**uplink: object) -> dict[str, Any]:
    return minimal(uplink={"url": TEMPLATE, **uplink})


def with_camera(**camera: object) -> dict[str, Any]:
    return minimal(cameras=[{"id": "cam", "url": "rtsp://10.0.0.5/s", **camera}])


def parse(data: dict[str, Any], base_dir: Path = Path("/")) -> Config:
    return parse_config(data, base_dir=base_dir)


def uplink_of(base_dir: Path = Path("/"), /, **uplink: object) -> UplinkConfig:
    config = parse(with_uplink(**uplink), base_dir)
    assert config.uplink is not None
    return config.uplink


def problems_of(data: dict[str, Any], base_dir: Path = Path("/")) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir=base_dir)
    return info.value.problems


def readable(directory: Path, name: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    return path


@pytest.fixture
def big_filesystem(monkeypatch: pytest.MonkeyPatch) -> None:
    """No storage warnings: every filesystem looks 1 PiB large."""

    def statvfs(path: object) -> SimpleNamespace:
        return SimpleNamespace(f_blocks=1024**5 // 4096, f_frsize=4096)

    monkeypatch.setattr(os, "statvfs", statvfs)


# --- a full valid file and the defaults ----------------------------------------------------------


def test_full_valid_uplink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = readable(tmp_path, "tls/csu-ca.pem")
    cert = readable(tmp_path, "tls/client.pem")
    key = readable(tmp_path / "elsewhere", "client.key")
    monkeypatch.setenv("UPLINK_PASSWORD", "uplink-env-secret")
    text = FULL.replace("KEY", str(key)).replace("PIN2", OTHER_PIN)
    config = load_config(write(tmp_path, text))

    uplink = config.uplink
    assert isinstance(uplink, UplinkConfig)
    assert uplink.url == TEMPLATE
    assert uplink.username == "res-0042"
    assert uplink.password is not None
    assert uplink.password.get_secret_value() == "uplink-env-secret"
    assert uplink.password_file is None
    assert (uplink.scheme, uplink.secure) == ("rtsps", True)
    assert (uplink.max_session, uplink.queue, uplink.connect_timeout) == (2700.0, 0.5, 30.0)
    assert uplink.tls == UplinkTlsConfig(
        ca_file=ca, pin_sha256=(EMPTY_PIN, OTHER_PIN), cert_file=cert, key_file=key
    )
    assert uplink.tls.ca_file == tmp_path / "tls" / "csu-ca.pem"  # relative to the config file

    assert [camera.forward for camera in config.cameras] == ["continuous", "on_demand", "off"]
    hall = config.camera("hall-a")
    assert hall.forward_url == "rtsp://10.0.0.11/sub"
    assert config.camera("porch").forward_url is None
    assert config.control == ControlConfig(socket=Path("/run/cg/control.sock"))
    assert config.audit.path == Path("/var/log/camera-gateway/audit")
    assert config.audit.retention == 365 * 86400  # the CNIL's upper recommendation
    assert config.audit.key_dir == config.storage.path / "keys"
    assert redact("auth uplink-env-secret") == "auth ***"


def test_defaults() -> None:
    config = parse(minimal())
    assert config.uplink is None
    assert config.control.socket == Path("/run/camera-gateway/control.sock")
    assert config.audit.path == Path("/srv/rec/audit")

    uplink = uplink_of()
    assert (uplink.username, uplink.password, uplink.password_file, uplink.tls) == (
        None,
        None,
        None,
        None,
    )
    assert (uplink.max_session, uplink.queue, uplink.connect_timeout) == (1800.0, 2.0, 5.0)

    camera = parse(with_camera()).cameras[0]
    assert camera.forward == "on_demand"
    assert camera.forward_url is None
    assert camera.forward_source_url() is None
    assert camera.display_forward_url is None

    tls = uplink_of(tls={}).tls
    assert tls == UplinkTlsConfig()
    assert tls is not None and tls.pin_sha256 == ()


def test_empty_sections_mean_defaults(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """\
            site_id: res-1
            storage: {path: /srv, quota: 1GiB}
            uplink:
            control:
            audit:
            """,
        )
    )
    assert config.uplink is None
    assert config.control.socket == Path("/run/camera-gateway/control.sock")
    assert config.audit.path == Path("/srv/audit")


def test_new_models_are_frozen() -> None:
    config = parse(with_uplink(tls={}))
    assert config.uplink is not None and config.uplink.tls is not None
    with pytest.raises(pydantic.ValidationError):
        config.uplink.queue = 3.0
    with pytest.raises(pydantic.ValidationError):
        config.uplink.tls.ca_file = Path("/x")
    with pytest.raises(pydantic.ValidationError):
        config.control.socket = Path("/x")
    with pytest.raises(pydantic.ValidationError):
        config.audit.path = Path("/x")


# --- URLs of the uplink --------------------------------------------------------------------------


def test_target_push_and_display_urls() -> None:
    password = "p@ss:w/rd?#%"
    data = with_uplink(username="res 0042", password=password)
    config = parse(data)
    uplink = config.uplink
    assert uplink is not None

    assert uplink.target_url("res-1", "hall-a") == "rtsps://csu.example.org:8322/res-1/hall-a"
    push = uplink.push_url("res-1", "hall-a")
    assert push == ("rtsps://res%200042:p%40ss%3Aw%2Frd%3F%23%25@csu.example.org:8322/res-1/hall-a")
    parts = urlsplit(push)
    assert (parts.hostname, parts.port, parts.path) == ("csu.example.org", 8322, "/res-1/hall-a")
    assert parts.password is not None and unquote(parts.password) == password
    assert uplink.display_target("res-1", "hall-a") == (
        "rtsps://res%200042:***@csu.example.org:8322/res-1/hall-a"
    )
    encoded = "p%40ss%3Aw%2Frd%3F%23%25"
    for text in (
        uplink.target_url("res-1", "hall-a"),
        uplink.display_target("res-1", "hall-a"),
        repr(uplink),
        str(uplink),
        repr(config),
        str(config),
    ):
        assert password not in text
        assert encoded not in text


def test_push_url_without_credentials_is_the_target() -> None:
    uplink = uplink_of()
    assert (
        uplink.push_url("s", "c") == uplink.target_url("s", "c") == uplink.display_target("s", "c")
    )


def test_placeholders_may_appear_anywhere_and_more_than_once() -> None:
    uplink = uplink_of(url="rtmps://{site_id}.csu.example.org/live/{camera_id}?k={camera_id}")
    assert uplink.target_url("res-9", "cam_1") == "rtmps://res-9.csu.example.org/live/cam_1?k=cam_1"
    assert uplink_of(url="rtsp://csu.example.org/all").target_url("a", "b") == (
        "rtsp://csu.example.org/all"
    )


def test_filled_values_are_percent_encoded() -> None:
    uplink = uplink_of()
    assert uplink.target_url("a/b", "c d") == "rtsps://csu.example.org:8322/a%2Fb/c%20d"


@pytest.mark.parametrize(
    ("url", "scheme", "secure"),
    [
        ("rtsp://h/{camera_id}", "rtsp", False),
        ("rtsps://h/{camera_id}", "rtsps", True),
        ("rtmp://h/{camera_id}", "rtmp", False),
        ("rtmps://h/{camera_id}", "rtmps", True),
    ],
)
def test_allowed_schemes(url: str, scheme: str, secure: bool) -> None:
    uplink = uplink_of(url=url)
    assert (uplink.scheme, uplink.secure) == (scheme, secure)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://centre-77.example.net/{camera_id}", "scheme 'http' not allowed"),
        ("sim://csu/{camera_id}", "scheme 'sim' not allowed"),
        ("centre-77.example.net/{camera_id}", "scheme missing not allowed"),
        ("{site_id}://centre-77.example.net/", "scheme missing not allowed"),
        ("rtsps:///{camera_id}", "missing host"),
        ("rtsps://centre-77.example.net:99999/x", "not a valid URL (invalid port)"),
        ("rtsps://centre-77.example.net:0/x", "not a valid URL (port must be 1..65535)"),
        ("rtsps://[::1/x", "not a valid URL"),
    ],
)
def test_bad_uplink_url(url: str, reason: str) -> None:
    [problem] = problems_of(with_uplink(url=url))
    assert problem.startswith(f"uplink.url: {reason}")
    assert "centre-77" not in problem


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("rtsps://csu.example.org/{site}/{camera_id}", "{site}"),
        ("rtsps://csu.example.org/{site_id}/{0}", "{0}"),
        ("rtsps://csu.example.org/{}", "{}"),
        ("rtsps://csu.example.org/{camera_id!r}", "{camera_id!r}"),
        ("rtsps://csu.example.org/{camera_id:>8}", "{camera_id:>8}"),
    ],
)
def test_unknown_placeholder_is_named(url: str, named: str) -> None:
    assert problems_of(with_uplink(url=url)) == [
        f"uplink.url: unknown placeholder {named}: only {{site_id}} and {{camera_id}} are allowed"
    ]


def test_all_unknown_placeholders_are_named() -> None:
    [problem] = problems_of(with_uplink(url="rtsps://h/{a}/{b}/{a}"))
    assert problem.startswith("uplink.url: unknown placeholder {a}, {b}: ")


@pytest.mark.parametrize("url", ["rtsps://h/{site_id", "rtsps://h/site_id}"])
def test_unbalanced_braces(url: str) -> None:
    [problem] = problems_of(with_uplink(url=url))
    assert problem.startswith("uplink.url: unbalanced '{' or '}'")


@pytest.mark.parametrize(
    "url",
    [
        "rtsps://res-1:url-secret-271@csu.example.org/{camera_id}",
        "rtsps://res-1@csu.example.org/{camera_id}",
        "rtsps://{site_id}:url-secret-271@csu.example.org/{camera_id}",
    ],
)
def test_credentials_in_uplink_url_are_refused(url: str) -> None:
    [problem] = problems_of(with_uplink(url=url))
    assert problem == (
        "uplink.url: credentials in the URL are refused: "
        "put credentials in uplink.username and uplink.password"
    )
    assert "url-secret-271" not in problem


def test_uplink_secrets_never_in_config_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        site_id: res-1
        storage: {path: /srv, quota: 10XB}
        uplink:
          url: rtsp://csu-host-77.example.org/{nope}
          username: res-1
          password: uplink-literal-606
          tls: {pin_sha256: [short]}
          colour: red
        cameras:
          - id: a
            url: rtsp://10.0.0.1/s
            forward_url: http://admin:fwd-secret-707@10.0.0.2/s
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "uplink.url: unknown placeholder {nope}" in text
    assert "uplink.tls.pin_sha256[0]: " in text
    assert "uplink.colour: unknown key" in text
    assert "cameras[0].forward_url: scheme 'http' not allowed" in text
    for secret in ("uplink-literal-606", "fwd-secret-707", "csu-host-77"):
        assert secret not in text
        assert secret not in repr(info.value)
    assert info.value.__suppress_context__


def test_uplink_username_must_not_be_empty() -> None:
    assert problems_of(with_uplink(username="")) == ["uplink.username: must not be empty"]


# --- the uplink password ---------------------------------------------------------------------


def test_uplink_password_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPLINK_PASSWORD", "from-env-uplink-1")
    uplink = uplink_of(password="${UPLINK_PASSWORD}")
    assert uplink.password is not None
    assert uplink.password.get_secret_value() == "from-env-uplink-1"
    assert redact("said from-env-uplink-1") == "said ***"


def test_uplink_password_missing_environment_variable() -> None:
    assert problems_of(with_uplink(password="${UPLINK_PASSWORD}")) == [
        "uplink.password: environment variable UPLINK_PASSWORD is not set"
    ]


def test_uplink_password_file_relative_to_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "uplink").write_text("from-creds-uplink\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    uplink = uplink_of(tmp_path / "config-dir", password_file="uplink")
    assert uplink.password is not None
    assert uplink.password.get_secret_value() == "from-creds-uplink"
    assert uplink.password_file == Path("uplink")  # kept as given
    assert redact("token from-creds-uplink") == "token ***"


def test_uplink_password_file_relative_to_config_directory(tmp_path: Path) -> None:
    (tmp_path / "uplink").write_text("from-config-dir-up\n", encoding="utf-8")
    uplink = uplink_of(tmp_path, password_file="uplink")
    assert uplink.password is not None
    assert uplink.password.get_secret_value() == "from-config-dir-up"


def test_uplink_password_file_missing(tmp_path: Path) -> None:
    [problem] = problems_of(with_uplink(password_file="absent"), base_dir=tmp_path)
    assert problem.startswith(f"uplink.password_file: cannot read {tmp_path / 'absent'}")


def test_uplink_password_and_password_file_are_exclusive(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("x", encoding="utf-8")
    assert problems_of(with_uplink(password="abc", password_file=str(tmp_path / "pw"))) == [
        "uplink.password_file: password and password_file are mutually exclusive"
    ]


# --- uplink.tls ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["rtsp", "rtmp"])
def test_tls_with_a_plain_scheme_is_refused(scheme: str) -> None:
    assert problems_of(with_uplink(url=f"{scheme}://csu.example.org/{{camera_id}}", tls={})) == [
        f"uplink.tls: applies to rtsps:// and rtmps:// only, not {scheme}://"
    ]


def test_tls_with_rtmps_is_accepted() -> None:
    assert uplink_of(url="rtmps://csu.example.org/{camera_id}", tls={}).tls == UplinkTlsConfig()


def test_missing_ca_file_names_the_path(tmp_path: Path) -> None:
    assert problems_of(with_uplink(tls={"ca_file": "csu-ca.pem"}), base_dir=tmp_path) == [
        f"uplink.tls.ca_file: cannot read {tmp_path / 'csu-ca.pem'}: No such file or directory"
    ]


def test_absolute_tls_files_are_kept(tmp_path: Path) -> None:
    ca = readable(tmp_path, "ca.pem")
    tls = uplink_of(Path("/elsewhere"), tls={"ca_file": str(ca)}).tls
    assert tls is not None and tls.ca_file == ca


def test_tls_file_must_be_a_readable_file(tmp_path: Path) -> None:
    [problem] = problems_of(with_uplink(tls={"ca_file": str(tmp_path)}))
    assert problem == f"uplink.tls.ca_file: cannot read {tmp_path}: not a regular file"
    assert problems_of(with_uplink(tls={"ca_file": ""})) == [
        "uplink.tls.ca_file: must not be empty"
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_tls_file(tmp_path: Path) -> None:
    key = readable(tmp_path, "client.key")
    key.chmod(0)
    cert = readable(tmp_path, "client.pem")
    assert problems_of(with_uplink(tls={"cert_file": str(cert), "key_file": str(key)})) == [
        f"uplink.tls.key_file: cannot read {key}: Permission denied"
    ]


def test_tls_file_content_never_in_errors(tmp_path: Path) -> None:
    key = tmp_path / "client.key"
    key.write_text("key-material-808", encoding="utf-8")
    problems = problems_of(with_uplink(tls={"key_file": str(key), "pin_sha256": ["x"]}))
    assert "key-material-808" not in "\n".join(problems)


def test_cert_without_key_is_refused(tmp_path: Path) -> None:
    cert = readable(tmp_path, "client.pem")
    assert problems_of(with_uplink(tls={"cert_file": str(cert)})) == [
        "uplink.tls.key_file: required when cert_file is given (both or neither)"
    ]


def test_key_without_cert_is_refused(tmp_path: Path) -> None:
    key = readable(tmp_path, "client.key")
    assert problems_of(with_uplink(tls={"key_file": str(key)})) == [
        "uplink.tls.key_file: given without cert_file (both or neither)"
    ]


def test_missing_cert_file_is_reported_once(tmp_path: Path) -> None:
    key = readable(tmp_path, "client.key")
    tls = {"cert_file": "absent.pem", "key_file": str(key)}
    assert problems_of(with_uplink(tls=tls), base_dir=tmp_path) == [
        f"uplink.tls.cert_file: cannot read {tmp_path / 'absent.pem'}: No such file or directory"
    ]


def test_pins_are_normalized() -> None:
    pins = [f"sha256//{EMPTY_PIN}", OTHER_PIN, EMPTY_PIN]
    tls = uplink_of(tls={"pin_sha256": pins}).tls
    assert tls is not None
    assert tls.pin_sha256 == (EMPTY_PIN, OTHER_PIN, EMPTY_PIN)


@pytest.mark.parametrize(
    ("pin", "reason"),
    [
        (base64.b64encode(bytes(31)).decode(), "decodes to 31 bytes, a SHA-256 pin is 32 bytes"),
        ("sha256//" + base64.b64encode(bytes(33)).decode(), "decodes to 33 bytes"),
        ("sha256//", "decodes to 0 bytes"),
        ("not base64 at all!", "not valid base64"),
        (EMPTY_PIN.rstrip("="), "not valid base64"),
        (EMPTY_PIN.replace("+", "-").replace("/", "_"), "not valid base64"),
        ("sha1//" + EMPTY_PIN, "not valid base64"),
    ],
)
def test_bad_pin_names_the_index(pin: str, reason: str) -> None:
    [problem] = problems_of(with_uplink(tls={"pin_sha256": [EMPTY_PIN, pin]}))
    assert problem.startswith(f"uplink.tls.pin_sha256[1]: {reason}")


def test_tls_unknown_key() -> None:
    assert problems_of(with_uplink(tls={"ca": "/etc/ssl/ca.pem"})) == [
        "uplink.tls.ca: unknown key (allowed: ca_file, cert_file, key_file, pin_sha256)"
    ]


# --- uplink durations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("13h", "must be at most 12h, got 13h00m"),
        (12 * 3600 + 1, "must be at most 12h"),
        ("0s", "must be greater than 0"),
    ],
)
def test_bad_max_session(value: object, reason: str) -> None:
    [problem] = problems_of(with_uplink(max_session=value))
    assert problem.startswith(f"uplink.max_session: {reason}")


def test_max_session_limit_is_allowed() -> None:
    assert uplink_of(max_session="12h").max_session == 12 * 3600.0


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("queue", "0.4s", "must be between 0.5s and 10s, got 0.4s"),
        ("queue", "11s", "must be between 0.5s and 10s, got 11s"),
        ("connect_timeout", "500ms", "must be between 1s and 30s, got 0.5s"),
        ("connect_timeout", "31s", "must be between 1s and 30s, got 31s"),
        ("queue", "soon", "invalid duration 'soon'"),
    ],
)
def test_bad_queue_and_connect_timeout(key: str, value: str, reason: str) -> None:
    [problem] = problems_of(with_uplink(**{key: value}))
    assert problem.startswith(f"uplink.{key}: {reason}")


@pytest.mark.parametrize(
    ("key", "value", "seconds"),
    [
        ("queue", "0.5s", 0.5),
        ("queue", "10s", 10.0),
        ("connect_timeout", 1, 1.0),
        ("connect_timeout", "30s", 30.0),
    ],
)
def test_duration_bounds_are_allowed(key: str, value: object, seconds: float) -> None:
    assert getattr(uplink_of(**{key: value}), key) == seconds


def test_uplink_shape_errors() -> None:
    assert problems_of(minimal(uplink="rtsps://h/x")) == ["uplink: expected a mapping"]
    assert problems_of(minimal(uplink={})) == ["uplink.url: required key is missing"]
    assert problems_of(with_uplink(max_sesion="1h")) == [
        "uplink.max_sesion: unknown key (allowed: url, username, password, password_file, tls, "
        "max_session, queue, connect_timeout)"
    ]


# --- cameras: forwarding ---------------------------------------------------------------------


def test_forward_off_is_read_from_unquoted_yaml(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """\
            site_id: res-1
            storage: {path: /srv, quota: 1GiB}
            cameras:
              - {id: a, url: "rtsp://10.0.0.1/s", forward: off}
              - {id: b, url: "rtsp://10.0.0.2/s", forward: "off"}
            """,
        )
    )
    assert [camera.forward for camera in config.cameras] == ["off", "off"]


@pytest.mark.parametrize("value", ["always", True, "ON_DEMAND"])
def test_bad_forward_mode(value: object) -> None:
    assert problems_of(with_camera(forward=value)) == [
        "cameras[0].forward: input should be 'continuous', 'on_demand' or 'off'"
    ]


def test_continuous_without_uplink_is_refused() -> None:
    data = minimal(
        cameras=[
            {"id": "a", "url": "rtsp://10.0.0.1/s", "forward": "on_demand"},
            {"id": "b", "url": "rtsp://10.0.0.2/s", "forward": "continuous"},
        ]
    )
    assert problems_of(data) == [
        "cameras[1].forward: continuous forwarding needs an uplink section"
    ]
    data["uplink"] = None
    assert problems_of(data) == [
        "cameras[1].forward: continuous forwarding needs an uplink section"
    ]


def test_continuous_with_uplink_and_on_demand_without() -> None:
    data = with_camera(forward="continuous")
    data["uplink"] = {"url": TEMPLATE}
    config = parse(data)
    assert config.cameras[0].forward == "continuous"
    assert parse(with_camera(forward="on_demand")).cameras[0].forward == "on_demand"


def test_continuous_with_an_invalid_uplink_reports_the_uplink_only() -> None:
    data = with_camera(forward="continuous")
    data["uplink"] = {"url": "http://h/"}
    assert problems_of(data) == [
        "uplink.url: scheme 'http' not allowed (use rtsp://, rtsps://, rtmp:// or rtmps://)"
    ]


def test_forward_url_uses_the_camera_credentials() -> None:
    camera = parse(
        with_camera(username="viewer", password="p@ss/1", forward_url="rtsp://10.0.0.5/sub")
    ).cameras[0]
    assert camera.forward_url == "rtsp://10.0.0.5/sub"
    assert camera.forward_source_url() == "rtsp://viewer:p%40ss%2F1@10.0.0.5/sub"
    assert camera.display_forward_url == "rtsp://viewer:***@10.0.0.5/sub"
    assert camera.source_url() == "rtsp://viewer:p%40ss%2F1@10.0.0.5/s"


def test_forward_url_credentials_are_moved_out() -> None:
    config = parse(with_camera(forward_url="rtsps://viewer:fwd-pass-432@10.0.0.5:322/sub"))
    camera = config.cameras[0]
    assert camera.forward_url == "rtsps://10.0.0.5:322/sub"
    assert camera.username == "viewer"
    assert camera.password is not None
    assert camera.password.get_secret_value() == "fwd-pass-432"
    assert camera.source_url() == "rtsp://viewer:fwd-pass-432@10.0.0.5/s"
    assert camera.forward_source_url() == "rtsps://viewer:fwd-pass-432@10.0.0.5:322/sub"
    assert camera.display_forward_url == "rtsps://viewer:***@10.0.0.5:322/sub"
    for text in (repr(camera), str(camera), repr(config), str(config)):
        assert "fwd-pass-432" not in text
    assert redact("got fwd-pass-432") == "got ***"


def test_forward_url_user_only_combines_with_password_key() -> None:
    camera = parse(
        with_camera(password="key-pass", forward_url="rtsp://viewer@10.0.0.5/sub")
    ).cameras[0]
    assert camera.forward_url == "rtsp://10.0.0.5/sub"
    assert camera.forward_source_url() == "rtsp://viewer:key-pass@10.0.0.5/sub"


@pytest.mark.parametrize(
    "extra",
    [
        {"username": "other"},
        {"password": "other-pass"},
        {"password_file": "/nope"},
        {"url": "rtsp://viewer:main-pass@10.0.0.5/s"},
        {"url": "rtsp://viewer@10.0.0.5/s"},
    ],
)
def test_forward_url_credentials_given_twice(extra: dict[str, str]) -> None:
    data = with_camera(forward_url="rtsp://viewer:twice-fwd-9@10.0.0.5/sub", **extra)
    problems = problems_of(data)
    assert problems[-1].startswith("cameras[0].forward_url: credentials given twice")
    assert "twice-fwd-9" not in "\n".join(problems)


def test_same_credentials_in_both_urls_are_still_twice() -> None:
    data = with_camera(
        url="rtsp://viewer:same-pass@10.0.0.5/s", forward_url="rtsp://viewer:same-pass@10.0.0.5/x"
    )
    [problem] = problems_of(data)
    assert problem.startswith("cameras[0].forward_url: credentials given twice")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.5/sub", "scheme 'http' not allowed"),
        ("rtmp://10.0.0.5/sub", "scheme 'rtmp' not allowed"),
        ("rtsp:///sub", "missing host"),
        ("rtsp://10.0.0.5:70000/s", "not a valid URL (invalid port)"),
    ],
)
def test_bad_forward_url(url: str, reason: str) -> None:
    [problem] = problems_of(with_camera(forward_url=url))
    assert problem.startswith(f"cameras[0].forward_url: {reason}")


def test_sim_forward_url() -> None:
    camera = parse(with_camera(forward_url="sim://sub?fps=5")).cameras[0]
    assert camera.forward_source_url() == camera.display_forward_url == "sim://sub?fps=5"


def test_camera_config_alone_accepts_continuous() -> None:
    camera = CameraConfig.model_validate(
        {"id": "cam", "url": "rtsp://10.0.0.5/s", "forward": "continuous"}
    )
    assert camera.forward == "continuous"


@pytest.mark.parametrize("camera_id", ["audit"])
def test_reserved_camera_id(camera_id: str) -> None:
    assert problems_of(with_camera(id=camera_id)) == [
        "cameras[0].id: camera id 'audit' is reserved (the audit log's default directory)"
    ]
    assert parse(with_camera(id="audit-2")).cameras[0].id == "audit-2"


# --- control and audit -----------------------------------------------------------------------


def test_control_socket_length_limit() -> None:
    longest = "/" + "s" * 106
    assert parse(minimal(control={"socket": longest})).control.socket == Path(longest)
    assert problems_of(minimal(control={"socket": longest + "s"})) == [
        "control.socket: is 108 bytes long, a Unix socket path is at most 107 bytes"
    ]


def test_control_socket_length_is_counted_in_bytes() -> None:
    path = "/run/" + "é" * 52  # 5 + 104 bytes, 57 characters
    [problem] = problems_of(minimal(control={"socket": path}))
    assert problem == "control.socket: is 109 bytes long, a Unix socket path is at most 107 bytes"


@pytest.mark.parametrize(
    ("socket", "reason"),
    [
        ("control.sock", "must be an absolute path"),
        ("run/control.sock", "must be an absolute path"),
        ("", "must not be empty"),
    ],
)
def test_bad_control_socket(socket: str, reason: str) -> None:
    assert problems_of(minimal(control={"socket": socket})) == [f"control.socket: {reason}"]


def test_control_unknown_key() -> None:
    assert problems_of(minimal(control={"path": "/run/x.sock"})) == [
        "control.path: unknown key (allowed: socket)"
    ]


def test_audit_default_is_under_storage_path() -> None:
    assert parse(minimal()).audit.path == Path("/srv/rec/audit")
    relative = minimal()
    relative["storage"]["path"] = "recordings"
    assert parse(relative).audit.path == Path("recordings/audit")
    assert parse(minimal(audit={})).audit.path == Path("/srv/rec/audit")


def test_audit_path_given() -> None:
    config = parse(minimal(audit={"path": "/var/log/cg-audit"}))
    assert config.audit.path == Path("/var/log/cg-audit")


@pytest.mark.parametrize(
    ("path", "reason"), [("audit", "must be an absolute path"), ("", "must not be empty")]
)
def test_bad_audit_path(path: str, reason: str) -> None:
    assert problems_of(minimal(audit={"path": path})) == [f"audit.path: {reason}"]


@pytest.mark.parametrize("retention", ["180d", "365d", "1096d"])
def test_audit_retention_of_six_months_to_three_years_is_taken(retention: str) -> None:
    assert parse(minimal(audit={"retention": retention})).audit.retention == parse_duration(
        retention
    )


@pytest.mark.parametrize("retention", ["30d", "1097d"])
def test_audit_retention_outside_six_months_to_three_years_is_refused(retention: str) -> None:
    (found,) = problems_of(minimal(audit={"retention": retention}))
    assert found.startswith("audit.retention: must be between 6 months (180d) and 3 years")


def test_audit_unknown_key_and_invalid_storage() -> None:
    assert problems_of(minimal(audit={"dir": "/x"})) == [
        "audit.dir: unknown key (allowed: path, retention, key_dir)"
    ]
    # No spurious audit problem when storage.path itself is wrong.
    assert problems_of({"site_id": "res-1", "storage": {"quota": "1GiB"}}) == [
        "storage.path: required key is missing"
    ]


# --- warnings --------------------------------------------------------------------------------


@pytest.mark.usefixtures("big_filesystem")
def test_warning_continuous_forwarding() -> None:
    data = minimal(
        uplink={"url": TEMPLATE},
        cameras=[
            {"id": "porch", "url": "rtsps://10.0.0.1/s"},
            {"id": "hall-a", "url": "rtsps://10.0.0.2/s", "forward": "continuous"},
            {"id": "garage", "url": "rtsps://10.0.0.3/s", "forward": "off"},
        ],
    )
    assert config_warnings(parse(data)) == [CONTINUOUS_WARNING.format(index=1, id="hall-a")]


@pytest.mark.usefixtures("big_filesystem")
@pytest.mark.parametrize("scheme", ["rtsp", "rtmp"])
def test_warning_uplink_password_in_clear(scheme: str) -> None:
    data = with_uplink(url=f"{scheme}://csu.example.org/{{camera_id}}", password="clear-pw-1")
    assert config_warnings(parse(data)) == [
        f"uplink: password sent in clear over {scheme}://; prefer {scheme}s://"
    ]


@pytest.mark.usefixtures("big_filesystem")
def test_no_uplink_warning_when_secure_or_without_password() -> None:
    assert config_warnings(parse(with_uplink(password="tls-pw-1"))) == []
    assert config_warnings(parse(with_uplink(url="rtsp://csu.example.org/{camera_id}"))) == []
    assert config_warnings(parse(with_camera(forward="on_demand"))) == []


# --- secrets in the uplink URL ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtmp://csu.example.org/live/k3y-{camera_id}", "rtmp://csu.example.org/live/***-hall-a"),
        ("rtmps://csu.example.org/live/a1b2c3d4e5", "rtmps://csu.example.org/live/***"),
        (
            "rtmp://csu.example.org/live/{site_id}-{camera_id}",
            "rtmp://csu.example.org/live/res-1-hall-a",
        ),
        (
            "rtsps://csu.example.org:8322/{site_id}/{camera_id}",
            "rtsps://csu.example.org:8322/res-1/hall-a",
        ),
    ],
)
def test_display_target_masks_an_rtmp_stream_key(url: str, shown: str) -> None:
    uplink = uplink_of(url=url)
    assert uplink.display_target("res-1", "hall-a") == shown
    assert uplink.push_url("res-1", "hall-a") == uplink.target_url("res-1", "hall-a")


def test_tokens_in_the_uplink_url_are_registered_as_secrets() -> None:
    uplink = uplink_of(url="rtmp://csu.example.org/live/{camera_id}?token=upl1nk-t0ken")
    assert "upl1nk-t0ken" in uplink.push_url("res-1", "hall-a")
    assert redact("ffmpeg said upl1nk-t0ken") == "ffmpeg said ***"
    assert "upl1nk-t0ken" not in uplink.display_target("res-1", "hall-a")
