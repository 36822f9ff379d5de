"""Throwaway real servers on free loopback ports: PostgreSQL, Redis, Prometheus, Alertmanager.

For tests that stop, kill, fill or reconfigure a server (the shared PostgreSQL and Redis are never touched)
and for the real Prometheus/Alertmanager the scaling and alerting tests need. Each is a context manager;
a missing binary raises `BinaryMissing`, which the pytest fixtures turn into a skip.
"""

from tradesense_sandbox.servers.alertmanager import AlertmanagerServer
from tradesense_sandbox.servers.postgres import ThrowawayPostgres
from tradesense_sandbox.servers.process import BinaryMissing, ServerProcess, ServerStartError, free_port
from tradesense_sandbox.servers.prometheus import PrometheusServer
from tradesense_sandbox.servers.redis import ThrowawayRedis

__all__ = [
    "AlertmanagerServer",
    "BinaryMissing",
    "PrometheusServer",
    "ServerProcess",
    "ServerStartError",
    "ThrowawayPostgres",
    "ThrowawayRedis",
    "free_port",
]
