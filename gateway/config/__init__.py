"""Gateway configuration: the validated, immutable settings and how to load them."""

from gateway.config.load import ConfigError, config_warnings, load_config, parse_config
from gateway.config.model import CameraConfig, Config, MetricsConfig, StorageConfig

__all__ = [
    "CameraConfig",
    "Config",
    "ConfigError",
    "MetricsConfig",
    "StorageConfig",
    "config_warnings",
    "load_config",
    "parse_config",
]
