"""Missiva: self-hosted email and SMS marketing built around integration."""

__version__ = "0.1.0"
