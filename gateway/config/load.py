"""Loading the configuration: YAML reading, one-line-per-problem errors, start-up warnings."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gateway.config.camera import CameraConfig
from gateway.config.cleartext import exposure_warning, inspect_file
from gateway.config.model import Config
from gateway.units import format_size

__all__ = [
    "ConfigError",
    "config_warnings",
    "format_validation_error",
    "load_config",
    "parse_config",
]

_MESSAGE_PREFIXES = ("Value error, ", "Assertion failed, ")
_REWORDED = {
    "missing": "required key is missing",
    "model_type": "expected a mapping",
    "dict_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "string_type": "expected a string (quote the value in YAML)",
}


class ConfigError(Exception):
    """The configuration cannot be used; ``str()`` is one line per problem."""

    def __init__(self, problems: Sequence[str], *, path: Path | None = None) -> None:
        self.problems: list[str] = list(problems)
        self.path = path
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that refuses a key given twice in one mapping."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, Hashable) and key != "<<":
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"key {key!r} given twice",
                    key_node.start_mark,
                )
            seen.add(key)
    return loader.construct_mapping(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    """Describe a YAML error by position only: its snippet of the file could quote a secret."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        reason = exc.problem or exc.context or "invalid YAML"
        if mark is not None:
            return (
                f"{path}: invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {reason}"
            )
        return f"{path}: invalid YAML: {reason}"
    return f"{path}: invalid YAML"


def _format_loc(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "config"


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _model_at(root: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model that validates the mapping found at ``loc``."""
    annotation: object = root
    for part in loc:
        if isinstance(part, int):
            continue  # list items: the element model is found through the generic arguments
        model = _model_in(annotation)
        if model is None or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
    return _model_in(annotation)


def _reason(error: ErrorDetails, root: type[BaseModel]) -> str:
    if error["type"] == "extra_forbidden":
        model = _model_at(root, error["loc"][:-1])
        if model is None:
            return "unknown key"
        return f"unknown key (allowed: {', '.join(model.model_fields)})"
    if error["type"] in _REWORDED:
        return _REWORDED[error["type"]]
    message = error["msg"]
    for prefix in _MESSAGE_PREFIXES:
        message = message.removeprefix(prefix)
    if message.startswith("Input should"):
        message = "i" + message[1:]
    return message


def format_validation_error(exc: ValidationError, root: type[BaseModel] = Config) -> list[str]:
    """One ``field.path: reason`` line per problem; input values are never quoted."""
    problems: list[str] = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = error["loc"]
        if error["type"] == "invalid_key" and loc:
            # The last element of ``loc`` is the offending key itself.
            problems.append(f"{_format_loc(loc[:-1])}: key {loc[-1]!r} is not a string")
        else:
            problems.append(f"{_format_loc(loc)}: {_reason(error, root)}")
    return problems


def parse_config(data: Mapping[str, object], *, base_dir: Path) -> Config:
    """Validate a configuration mapping; relative password files are relative to ``base_dir``."""
    try:
        return Config.model_validate(dict(data), context={"base_dir": Path(base_dir)})
    except ValidationError as exc:
        # ``from None``: pydantic's own text quotes input values, which may hold passwords.
        raise ConfigError(format_validation_error(exc)) from None


def load_config(path: str | Path) -> Config:
    """Read and validate the YAML configuration file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"], path=path) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError([f"{path}: cannot read: {reason}"], path=path) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"], path=path) from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader refusing repeated keys
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(path, exc)], path=path) from None
    if data is None:
        raise ConfigError([f"{path}: the file is empty"], path=path)
    if not isinstance(data, Mapping):
        raise ConfigError(
            [f"{path}: expected a mapping of settings at top level, got a {type(data).__name__}"],
            path=path,
        )
    try:
        config = parse_config(data, base_dir=path.absolute().parent)
    except ConfigError as exc:
        raise ConfigError(exc.problems, path=path) from None
    return config.loaded_from(inspect_file(path, data))


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def config_warnings(config: Config) -> list[str]:
    """Problems worth showing at start that do not stop the gateway."""
    warnings: list[str] = []
    storage = config.storage
    where = _nearest_existing(storage.path)
    try:
        stats = os.statvfs(where)
    except OSError as exc:
        warnings.append(f"storage.path: cannot inspect the filesystem at {where}: {exc.strerror}")
    else:
        total = stats.f_blocks * stats.f_frsize
        if storage.quota > total:
            warnings.append(
                f"storage.quota ({format_size(storage.quota)}) is larger than the filesystem at "
                f"{where} ({format_size(total)}): retention will be driven by min_free"
            )
        if storage.min_free > total:
            warnings.append(
                f"storage.min_free ({format_size(storage.min_free)}) is larger than the filesystem "
                f"at {where} ({format_size(total)}): that much free space can never be kept"
            )
    for index, camera in enumerate(config.cameras):
        warnings += _camera_transport_warnings(f"cameras[{index}] ({camera.id})", camera)
    for index, camera in enumerate(config.cameras):
        if camera.forward == "continuous":
            warnings.append(
                f"cameras[{index}] ({camera.id}): forwards continuously to the centre; "
                "CCH L126-1-1 allows transmission to the police only in real time and for the time "
                "of an intervention — make sure an authorisation covers it"
            )
    uplink = config.uplink
    if uplink is not None and uplink.password is not None and not uplink.secure:
        warnings.append(
            f"uplink: password sent in clear over {uplink.scheme}://; prefer {uplink.scheme}s://"
        )
    exposed = None if config.file is None else exposure_warning(config.file)
    if exposed is not None:
        warnings.append(exposed)
    return warnings


def _camera_transport_warnings(label: str, camera: CameraConfig) -> list[str]:
    """What a man in the middle on the LAN could do to this camera's pull.

    Over plain ``rtsp://`` FFmpeg answers whatever authentication is asked for, Basic included,
    so anyone posing as the camera receives the password in clear. Over ``rtsps://`` the camera
    is verified before the first request, unless ``tls.insecure`` turns that off, which leaves it
    as exposed as plain RTSP.
    """
    warnings: list[str] = []
    urls = {"url": camera.url, "forward_url": camera.forward_url}
    plain = [key for key, url in urls.items() if url and urlsplit(url).scheme == "rtsp"]
    if camera.password is not None and plain:
        warnings.append(
            f"{label}: with plain rtsp:// ({' and '.join(plain)}) anyone on the LAN posing as the "
            "camera receives its password (FFmpeg sends it in clear when asked for Basic "
            "authentication); use rtsps://, where the camera is verified before any request"
        )
    if camera.tls is not None and camera.tls.insecure:
        exposure = (
            "receive its password"
            if camera.password is not None
            else "have its own video recorded as the camera's"
        )
        warnings.append(
            f"{label}: TLS verification is off (tls.insecure): anyone on the LAN can impersonate "
            f"the camera and {exposure}"
        )
    return warnings
