"""Missiva audience package."""
