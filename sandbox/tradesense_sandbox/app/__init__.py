"""The stand-in TradeSense backend: the runbook's endpoints and metric names, with switchable failures.

Tests and the demo run it in-process (`StandinApp`, sync or async) or as `python -m
tradesense_sandbox.app --port N`; `generate_load` / `BackgroundLoad` give Prometheus traffic to see.

Test, demo and benchmark infrastructure: the operator must never import it (a packaging fact, see README).
"""

from tradesense_sandbox.app.auth import TokenSigner, hash_password, verify_password
from tradesense_sandbox.app.config import AppConfig
from tradesense_sandbox.app.load import BackgroundLoad, LoadReport, generate_load
from tradesense_sandbox.app.logs import LogEntry, LogRing
from tradesense_sandbox.app.mode import FailureMode
from tradesense_sandbox.app.runner import StandinApp

__all__ = [
    "AppConfig",
    "BackgroundLoad",
    "FailureMode",
    "LoadReport",
    "LogEntry",
    "LogRing",
    "StandinApp",
    "TokenSigner",
    "generate_load",
    "hash_password",
    "verify_password",
]
