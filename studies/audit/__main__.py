"""``python -m studies.audit --target NAME``."""

from . import main

raise SystemExit(main())
