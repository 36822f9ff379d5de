"""The stand-in TradeSense backend: the runbook's endpoints and metric names, with switchable failures.

Tests and the demo run it in-process (`StandinApp`, sync or async) or as `python -m
tradesense_operator.sandbox.app --port N`; `generate_load` / `BackgroundLoad` give Prometheus traffic to see.
"""

from tradesense_operator.sandbox.app.auth import TokenSigner, hash_password, verify_password
from tradesense_operator.sandbox.app.config import AppConfig
from tradesense_operator.sandbox.app.load import BackgroundLoad, LoadReport, generate_load
from tradesense_operator.sandbox.app.logs import LogEntry, LogRing
from tradesense_operator.sandbox.app.mode import FailureMode
from tradesense_operator.sandbox.app.runner import StandinApp

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
