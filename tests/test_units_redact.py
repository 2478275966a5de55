"""Sizes and durations as users write them; secrets kept out of every output."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from gateway.redact import (
    RedactingFilter,
    mask_stream_key,
    redact,
    redact_url,
    register_secret,
    secrets_in_url,
)
from gateway.units import format_duration, format_size, parse_duration, parse_size


@pytest.fixture(autouse=True)
def _own_secret_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no registered secret: others in the session register passwords
    such as ``secret`` that would otherwise mask words these tests expect to see."""
    import gateway.redact

    monkeypatch.setattr(gateway.redact, "_secrets", set())


# -- sizes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1234", 1234),
        ("10B", 10),
        ("500MB", 500_000_000),
        ("500mb", 500_000_000),
        ("1.5kB", 1500),
        ("4.1MB", 4_100_000),  # exact, not 4099999 from float rounding
        ("8.2TB", 8_200_000_000_000),
        ("2.5GiB", 5 * 1024**3 // 2),
        ("1.5", 1),  # a fraction of a byte is dropped
        ("2GiB", 2 * 1024**3),
        ("  64 MiB ", 64 * 1024**2),
        ("3TB", 3 * 1000**4),
        ("1TiB", 1024**4),
        (4096, 4096),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "5 XB", "-5MB", "1,5GB", "5 MB extra", "1e9"])
def test_parse_size_error_names_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_size(text)
    message = str(error.value)
    assert repr(text) in message
    for unit in ("MB", "GiB", "500MB", "2GiB"):
        assert unit in message


def test_parse_size_refuses_negative_and_boolean() -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_size(-1)
    with pytest.raises(ValueError, match="boolean"):
        parse_size(True)


# -- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", 90.0),
        ("500ms", 0.5),
        ("90s", 90.0),
        ("15m", 900.0),
        ("15M", 900.0),
        ("24h", 86400.0),
        ("30d", 30 * 86400.0),
        ("1.5h", 5400.0),
        (" 2 d ", 172800.0),
        (4, 4.0),
        (2.5, 2.5),
    ],
)
def test_parse_duration(text: str | float, expected: float) -> None:
    assert parse_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "soon", "5 weeks", "-3s", "10y", "1h30m"])
def test_parse_duration_error_names_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_duration(text)
    message = str(error.value)
    assert repr(text) in message
    assert "ms, s, m, h, d" in message
    assert "30d" in message


def test_parse_duration_refuses_negative_and_boolean() -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_duration(-0.5)
    with pytest.raises(ValueError, match="boolean"):
        parse_duration(False)


@pytest.mark.parametrize(
    ("n_bytes", "expected"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (10 * 1024**2, "10.0 MiB"),
        (int(1.5 * 1024**3), "1.5 GiB"),
        (5 * 1024**4, "5.0 TiB"),
        (3 * 1024**5, "3072.0 TiB"),
    ],
)
def test_format_size(n_bytes: int, expected: str) -> None:
    assert format_size(n_bytes) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0.0s"),
        (2.5, "2.5s"),
        (45, "45s"),
        (750, "12m30s"),
        (3600 * 3 + 300, "3h05m"),
        (86400 * 2 + 3600 * 4, "2d04h"),
        (30 * 86400, "30d00h"),
    ],
)
def test_format_duration(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


def test_formatted_values_parse_back_to_about_the_same() -> None:
    for n in (1536, 10 * 1024**2, 3 * 1024**3):
        number, unit = format_size(n).split()
        assert parse_size(number + unit) == pytest.approx(n, rel=0.05)


# -- redaction ----------------------------------------------------------------------------------


def test_redact_url_keeps_user_host_port_and_path() -> None:
    url = "rtsp://admin:s3cret-Pass@192.168.1.20:554/Streaming/Channels/101?transport=tcp"

    redacted = redact_url(url)

    assert redacted == "rtsp://admin:***@192.168.1.20:554/Streaming/Channels/101?transport=tcp"
    assert "s3cret" not in redacted


def test_redact_url_without_password_is_unchanged() -> None:
    for url in ("rtsp://cam.local/live", "rtsp://viewer@cam.local:8554/live", "sim://lobby?fps=5"):
        assert redact_url(url) == url


def test_redact_url_ipv6_host_and_no_user() -> None:
    assert redact_url("rtsps://u:pw12@[fe80::1]:322/s") == "rtsps://u:***@[fe80::1]:322/s"
    assert redact_url("rtsp://:pw12@cam/s") == "rtsp://***@cam/s"


def test_redact_url_with_percent_encoded_password() -> None:
    url = "rtsp://admin:p%40ss%3Aword@cam:554/live"

    redacted = redact_url(url)

    assert redacted == "rtsp://admin:***@cam:554/live"


def test_redact_masks_registered_secrets_in_plain_and_percent_encoded_form() -> None:
    register_secret("Tr0ub4dor&3:x@y/z")

    # Outside URL userinfo, so only the registered secret can be recognised.
    text = (
        "token Tr0ub4dor&3:x@y/z; "
        "http://h/login?pass=Tr0ub4dor%263%3Ax%40y%2Fz; "
        "http://h/login?pass=Tr0ub4dor%263:x%40y%2Fz"
    )
    redacted = redact(text)

    assert "Tr0ub4dor" not in redacted
    assert redacted == "token ***; http://h/login?pass=***; http://h/login?pass=***"


def test_short_secrets_are_not_registered_but_userinfo_still_masked() -> None:
    register_secret("ab")

    assert redact("a cable, a tab") == "a cable, a tab"
    assert redact("rtsp://u:ab@h/x") == "rtsp://u:***@h/x"


def test_redact_masks_userinfo_in_ffmpeg_error_text() -> None:
    message = (
        "Server returned 401 Unauthorized (authorization failed): "
        "'rtsp://operator:Summer2024!@10.0.0.7:554/h264'"
    )

    redacted = redact(message)

    assert "Summer2024" not in redacted
    assert redacted == (
        "Server returned 401 Unauthorized (authorization failed): "
        "'rtsp://operator:***@10.0.0.7:554/h264'"
    )


def test_redact_leaves_text_without_secrets_alone() -> None:
    text = "camera lobby: connected to rtsp://10.0.0.7/live (h264 1920x1080), 25 fps"
    assert redact(text) == text


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test_units_redact.gateway")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    yield logger, output
    logger.removeHandler(handler)


def test_logging_filter_masks_secrets_in_message_args(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, output = logged
    register_secret("api-key-7f3a9c")

    logger.warning("camera %s: cannot open %s", "gate", "rtsp://admin:hunter2hunter@gate/live")
    logger.info("uploading with key %s", "api-key-7f3a9c")

    text = output.getvalue()
    assert "hunter2hunter" not in text
    assert "api-key-7f3a9c" not in text
    assert (
        "WARNING test_units_redact.gateway: camera gate: cannot open rtsp://admin:***@gate/live"
        in text
    )
    assert "uploading with key ***" in text


def test_logging_filter_masks_secrets_in_exception_text(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, output = logged
    register_secret("Wint3r-Is-Coming")

    def connect() -> None:
        raise ConnectionError(
            "Server returned 401 Unauthorized: 'rtsp://viewer:Wint3r-Is-Coming@cam/x' "
            "(password Wint3r-Is-Coming rejected)"
        )

    try:
        connect()
    except ConnectionError:
        logger.exception("camera %s failed", "yard")

    text = output.getvalue()
    assert "Wint3r-Is-Coming" not in text
    assert "camera yard failed" in text
    assert "Traceback (most recent call last)" in text
    assert (
        "ConnectionError: Server returned 401 Unauthorized: 'rtsp://viewer:***@cam/x' "
        "(password *** rejected)"
    ) in text


# -- hostile sizes and durations ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (10**400, "duration an integer of about 401 digits is more than 100 years"),
        (float("inf"), "duration inf is more than 100 years"),
        (float("nan"), "expected a duration such as 90s or 30d, got NaN"),
        (-(10**400), "duration must not be negative, got an integer of about 401 digits"),
        ("1" + "0" * 400, "invalid duration '100000000000000000000000…' (401 characters)"),
        ("1e400", "invalid duration '1e400'"),
        ([["15m"]], "expected a duration such as 90s or 30d, got a list of 1 item"),
        ("99999999999d", "duration '99999999999d' is more than 100 years"),
    ],
)
def test_parse_duration_refuses_huge_and_odd_values_with_a_value_error(
    value: object, expected: str
) -> None:
    with pytest.raises(ValueError) as error:
        parse_duration(value)  # type: ignore[arg-type]

    assert str(error.value).startswith(expected)


def test_a_3mb_duration_is_quoted_by_a_few_characters_and_its_length() -> None:
    with pytest.raises(ValueError) as error:
        parse_duration("9" * 3145728)

    message = str(error.value)
    assert message.startswith(f"invalid duration '{'9' * 24}…' (3145728 characters): use")
    assert len(message) < 200


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (10**400, "size an integer of about 401 digits is more than 8 EiB"),
        ("9" * 5000, "invalid size '999999999999999999999999…' (5000 characters)"),
        ("99999999999TiB", "size '99999999999TiB' is more than 8 EiB"),
        ({"a": 1}, "expected a size such as 500MB or 2GiB, got a dict of 1 item"),
    ],
)
def test_parse_size_refuses_huge_and_odd_values_with_a_value_error(
    value: object, expected: str
) -> None:
    with pytest.raises(ValueError) as error:
        parse_size(value)  # type: ignore[arg-type]

    assert str(error.value).startswith(expected)
    assert len(str(error.value)) < 200


# -- secrets in query strings and RTMP stream keys -----------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtmp://csu/live/stream?token=abc", "rtmp://csu/live/stream?token=***"),
        (
            "rtsp://10.0.0.11:554/cam/realmonitor?channel=1&subtype=0",
            "rtsp://10.0.0.11:554/cam/realmonitor?channel=1&subtype=0",
        ),
        (
            "rtsp://admin:pw99@cam/live?channel=1&Password=pw99&user=admin",
            "rtsp://admin:***@cam/live?channel=1&Password=***&user=admin",
        ),
        (
            "rtmps://csu:443/app/s?access_token=t0k&apiKey=k3y&X-Amz-Signature=abcd&sig=s1&pwd=p",
            "rtmps://csu:443/app/s?access_token=***&apiKey=***&X-Amz-Signature=***&sig=***&pwd=***",
        ),
        (
            "rtsp://cam/s?SESSIONID=42&auth=x&secret=y&credential=z&streamkey=w&passwd=v",
            "rtsp://cam/s?SESSIONID=***&auth=***&secret=***&credential=***&streamkey=***&passwd=***",
        ),
        (
            "rtsp://cam/s?keyint=50&signal=1&transport=tcp&profile=main",
            "rtsp://cam/s?keyint=50&signal=1&transport=tcp&profile=main",
        ),
        ("rtsp://cam/s?token=&flag", "rtsp://cam/s?token=&flag"),
    ],
)
def test_redact_url_masks_secret_query_values_and_keeps_harmless_ones(
    url: str, expected: str
) -> None:
    assert redact_url(url) == expected


def test_secrets_in_url_gives_the_values_to_register_as_written_and_decoded() -> None:
    url = "rtmp://csu/live/s?channel=1&token=a%2Bb%3Dc&Key=plain-key&subtype=0"

    assert secrets_in_url(url) == ["a%2Bb%3Dc", "a+b=c", "plain-key"]
    assert secrets_in_url("rtsp://cam/live?channel=1") == []
    assert secrets_in_url("rtsp://[bad") == []


def test_registered_query_secrets_are_masked_in_any_message() -> None:
    url = "rtmp://csu/live/s?token=Qx7-uplink-tok"
    for secret in secrets_in_url(url):
        register_secret(secret)

    assert redact("push failed: server said Qx7-uplink-tok is expired") == (
        "push failed: server said *** is expired"
    )


def test_redact_masks_query_secrets_of_urls_quoted_in_free_text() -> None:
    message = "cannot open 'rtmp://csu/live/s?token=abc123&ch=1'; retrying (https://x/?sig=zz)"

    assert (
        redact(message)
        == "cannot open 'rtmp://csu/live/s?token=***&ch=1'; retrying (https://x/?sig=***)"
    )


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("rtmp://csu/live/{site_id}-{camera_id}", "rtmp://csu/live/{site_id}-{camera_id}"),
        ("rtmp://csu/live/{site_id}/{camera_id}", "rtmp://csu/live/{site_id}/{camera_id}"),
        ("rtmp://csu/live/a1b2c3d4", "rtmp://csu/live/***"),
        ("rtmps://csu:443/live/xxxx-yyyy-zzzz", "rtmps://csu:443/live/***"),
        ("rtmp://csu/live/k3y_{camera_id}", "rtmp://csu/live/***_{camera_id}"),
        ("rtmp://csu/live/{site_id}.k3y", "rtmp://csu/live/{site_id}.***"),
        ("rtmp://csu/live/a1b2?token=t0k", "rtmp://csu/live/***?token=***"),
        ("rtmp://u:pw12@csu/live/{camera_id}", "rtmp://u:***@csu/live/{camera_id}"),
        ("rtmp://csu/live", "rtmp://csu/live"),
        ("rtsps://csu:8322/{site_id}/{camera_id}", "rtsps://csu:8322/{site_id}/{camera_id}"),
        ("rtsp://csu/ingest/literal", "rtsp://csu/ingest/literal"),
    ],
)
def test_mask_stream_key_hides_literal_stream_names_of_rtmp_templates(
    template: str, expected: str
) -> None:
    assert mask_stream_key(template) == expected


def test_logging_filter_masks_query_tokens_in_urls(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, output = logged

    logger.warning("forward: connected to %s", "rtmp://csu/live/hall?auth_token=zz9&ch=1")

    assert "zz9" not in output.getvalue()
    assert "rtmp://csu/live/hall?auth_token=***&ch=1" in output.getvalue()
