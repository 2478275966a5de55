"""What the daemon says about itself: live state, events, Prometheus metrics, MQTT and status.

- :mod:`~gateway.telemetry.state`: the live state, written by workers and read by the rest;
- :mod:`~gateway.telemetry.events`: events (their kinds a ``Literal``) and their bus;
- :mod:`~gateway.telemetry.metrics`: the Prometheus collector, read at scrape time;
- :mod:`~gateway.telemetry.mqtt`: status, events and commands over MQTT (payloads typed);
- :mod:`~gateway.telemetry.statusview`: status for people (JSON document and text table).
"""
