"""Shared pytest fixtures: services (see the module owner)."""
