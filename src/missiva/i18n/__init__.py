"""Missiva i18n package."""
