"""The package version (read by pyproject.toml and by what records the software a measurement ran on)."""

__version__ = "0.1.0"
