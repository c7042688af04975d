"""Errors of a run's settings, reported like a bad argument (exit code 2)."""


class RunSettingsError(ValueError):
    """A run argument is out of range (reported like a scenario error: exit code 2)."""
