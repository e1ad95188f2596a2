"""Missiva reports package."""
