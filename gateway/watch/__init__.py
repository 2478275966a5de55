"""Camera integrity in the daemon: the watch on each camera's keyframes (in its worker), the
snapshots, and how changes are announced (events, journal) and acted on (the forward)."""
