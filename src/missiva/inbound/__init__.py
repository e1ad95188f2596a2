"""Missiva inbound package."""
