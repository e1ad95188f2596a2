"""Missiva console package."""
