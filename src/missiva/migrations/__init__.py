"""Missiva migrations package."""
