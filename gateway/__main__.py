"""Run the command line as ``python -m gateway``."""

from gateway.daemon.cli import main

raise SystemExit(main())
