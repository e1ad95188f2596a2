"""Missiva sync package."""
