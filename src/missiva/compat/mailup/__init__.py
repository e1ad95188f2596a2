"""Missiva compat mailup package."""
