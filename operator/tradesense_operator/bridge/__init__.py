"""Alertmanager webhook receiver that turns alerts into TradeSenseIncident objects.

It creates, updates and resolves incidents only; it never acts on the target workloads itself.
"""
