"""Backup decisions, purely computational: schedules, retention, naming, manifests, inventory, locks.

No I/O happens here; the services feed in what storage and the API returned and act on the answers.
"""
