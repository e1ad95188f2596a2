"""Missiva delivery package."""
