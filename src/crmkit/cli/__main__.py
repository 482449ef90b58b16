"""``python -m crmkit.cli``: the same as the ``crmkit`` command."""

from crmkit.cli import main

raise SystemExit(main())
