"""``python -m accelkit.cli``."""

from accelkit.cli import main

main()
