"""Missiva messages package."""
