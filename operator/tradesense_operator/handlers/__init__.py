"""Thin kopf wiring: validate the body into a model, call a service, return status.

Handlers own the kopf decorators; they must not decide anything (services and domain do).
"""
