"""The one place the version is written (pyproject reads it: ``[tool.hatch.version]``)."""

__version__ = "0.2.0"
