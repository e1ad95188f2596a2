"""Missiva events package."""
