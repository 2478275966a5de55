"""The daemon's wiring: the supervisor process and its camera workers.

- :mod:`~gateway.daemon.service`: the supervisor's wiring and main loop (storage, workers,
  forwards, control socket, MQTT, metrics, reloads);
- :mod:`~gateway.daemon.workers`: one process per camera, its packet path
  (:mod:`~gateway.daemon.workers.pipeline`), the fork server and the supervision;
- :mod:`~gateway.daemon.health`: watchdog health of the supervisor's own threads;
- :mod:`~gateway.daemon.control`: the local command socket;
- :mod:`~gateway.daemon.systemd`: readiness, watchdog and journal logging;
- :mod:`~gateway.daemon.logsetup`: logging set-up for every process;
- :mod:`~gateway.daemon.cli`: the command line's parser and entry point, its commands in
  :mod:`~gateway.daemon.run_cli` (run, demo, check-config), :mod:`~gateway.daemon.recordings_cli`
  (recordings list, reindex), :mod:`~gateway.daemon.control_cli` (status, forward, through the
  control socket) and :mod:`~gateway.daemon.evidence_cli`;
- :mod:`~gateway.daemon.config_path`: which file a command reads without ``--config``;
- :mod:`~gateway.daemon.demo`: the demo's embedded default configuration, its run in
  :mod:`~gateway.daemon.demo_run` and the parts it starts (a local centre and broker) in
  :mod:`~gateway.daemon.demo_parts`.
"""
