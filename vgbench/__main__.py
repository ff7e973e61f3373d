"""``python -m vgbench`` runs the CLI."""

from vgbench.cli import main

main()
