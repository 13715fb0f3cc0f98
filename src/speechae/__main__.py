"""``python -m speechae`` runs the command-line interface."""

from speechae.cli import main

raise SystemExit(main())
