"""``python -m bizops_otel``: the same as the ``bizops-otel`` command."""

from .cli import main

raise SystemExit(main())
