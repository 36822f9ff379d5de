"""Orchestration: combines domain decisions with injected clients. No kopf imports."""
