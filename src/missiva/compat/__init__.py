"""Missiva compat package."""
