"""Shared pytest fixtures: secrets (see the module owner)."""
