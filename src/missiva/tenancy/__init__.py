"""Missiva tenancy package."""
