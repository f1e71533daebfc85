"""Activates the sockconf pytest plugin when pytest runs from the repository root."""

pytest_plugins = ["fixtures.plugin"]
