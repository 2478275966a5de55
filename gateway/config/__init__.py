"""Gateway configuration: the validated, immutable settings and how to load them."""

from gateway.config.load import ConfigError, config_warnings, load_config, parse_config
from gateway.config.model import (
    AuditConfig,
    CameraConfig,
    Config,
    ControlConfig,
    ForwardMode,
    MetricsConfig,
    StorageConfig,
    UplinkConfig,
    UplinkTlsConfig,
    WorkersConfig,
)

__all__ = [
    "AuditConfig",
    "CameraConfig",
    "Config",
    "ConfigError",
    "ControlConfig",
    "ForwardMode",
    "MetricsConfig",
    "StorageConfig",
    "UplinkConfig",
    "UplinkTlsConfig",
    "WorkersConfig",
    "config_warnings",
    "load_config",
    "parse_config",
]
