"""``python -m speechae`` runs the command-line interface."""

from speechae.cli import entry_point

entry_point()
