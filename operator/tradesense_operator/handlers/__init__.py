"""Thin kopf wiring: validate the body into a model, call a service, return status."""
