"""Operator tooling: ``python -m admin --help``."""
