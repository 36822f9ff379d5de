"""Shared pytest fixtures: kube (see the module owner)."""
