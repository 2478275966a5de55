"""Gateway configuration: the validated, immutable settings and how to load them."""

from gateway.config.camera import CameraConfig, ForwardMode
from gateway.config.load import ConfigError, config_warnings, load_config, parse_config
from gateway.config.model import Config
from gateway.config.services import AuditConfig, ControlConfig, MetricsConfig, WorkersConfig
from gateway.config.storage import StorageConfig
from gateway.config.tls import UplinkTlsConfig
from gateway.config.uplink import UplinkConfig

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
