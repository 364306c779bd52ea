"""``python -m ecotune`` is the ``ecotune`` command."""

from ecotune.cli import main

raise SystemExit(main())
