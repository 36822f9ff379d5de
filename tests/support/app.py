"""Shared pytest fixtures: app (see the module owner)."""
