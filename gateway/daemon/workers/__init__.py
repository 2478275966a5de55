"""Camera workers: each camera runs in its own process, under the daemon's supervision.

Parsing a camera's stream means running C code we do not own over bytes an attacker may
control, in reads we cannot cancel. So each camera's whole packet path (pull, timestamp
repair, fan-out, recorder, forward) runs in a worker process of its own, forked by a fork
server that did the heavy imports once. The daemon's main process, the supervisor, keeps the
control plane: configuration and reloads, the index, retention, the forward policy and journal,
MQTT, metrics, the control socket and systemd. A worker that stops making progress, or grows
past its memory cap, is killed and restarted with backoff; the other cameras never notice.

- :mod:`~gateway.daemon.workers.channel`: the message channel between a worker and its
  supervisor;
- :mod:`~gateway.daemon.workers.messages`: what they say to each other;
- :mod:`~gateway.daemon.workers.forkserver`: the fork server, and the supervisor's client of it;
- :mod:`~gateway.daemon.workers.process`: the worker process itself, and
  :mod:`~gateway.daemon.workers.pipeline`, the camera's packet path it assembles;
- :mod:`~gateway.daemon.workers.storage`: the storage as a worker sees it;
- :mod:`~gateway.daemon.workers.handle`: one camera as the supervisor sees it (the mirror of
  its status, its current process, its forward link);
- :mod:`~gateway.daemon.workers.supervisor`: watching and restarting the workers.
"""
