"""Alertmanager webhook receiver that turns alerts into TradeSenseIncident objects."""
