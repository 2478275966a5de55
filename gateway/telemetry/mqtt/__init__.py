"""Status, events and commands over MQTT: how a fleet of boxes is watched and driven."""

from gateway.telemetry.mqtt.publisher import MqttPublisher

__all__ = ["MqttPublisher"]
