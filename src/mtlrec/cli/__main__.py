"""`python -m mtlrec.cli` runs the command-line tool, as `python -m mtlrec` does."""

from . import main

raise SystemExit(main())
