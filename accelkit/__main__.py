"""``python -m accelkit``: the command line."""

from accelkit.cli import main

main()
