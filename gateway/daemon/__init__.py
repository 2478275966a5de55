"""The daemon's wiring: the supervisor process and its camera workers.

- :mod:`~gateway.daemon.service`: the supervisor's wiring and main loop (storage, workers,
  forwards, control socket, MQTT, metrics, reloads);
- :mod:`~gateway.daemon.workers`: one process per camera, its packet path
  (:mod:`~gateway.daemon.workers.pipeline`), the fork server and the supervision;
- :mod:`~gateway.daemon.health`: watchdog health of the supervisor's own threads;
- :mod:`~gateway.daemon.control`: the local command socket;
- :mod:`~gateway.daemon.systemd`: readiness, watchdog and journal logging;
- :mod:`~gateway.daemon.logsetup`: logging set-up for every process;
- :mod:`~gateway.daemon.cli`, :mod:`~gateway.daemon.demo`: the command line and the embedded
  default configuration.
"""
