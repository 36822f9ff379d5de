"""Start-up settings of the stand-in app.

Plain values; must not read the environment (`__main__` maps flags and environment onto it).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AppConfig:
    """Where the app listens and what it talks to; secrets are kept out of repr()."""

    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free port; the running app reports the real one."""
    pg_dsn: str | None = field(default=None, repr=False)
    """PostgreSQL with the runbook schema (sandbox.schema); None serves synthetic data and a fixed test user."""
    redis_url: str | None = None
    """Redis for the analytics cache and sessions; None keeps both in process memory."""
    redis_prefix: str = ""
    """Prepended to every Redis key, so tests sharing a Redis db do not collide."""
    signing_key: bytes | str | None = field(default=None, repr=False)
    """Token signing key; None generates a random one."""
    version: str = "v1.0.0"
    """Reported by health and the tradesense_build_info metric (lets tests see a rollback)."""
    db_pool_size: int = 10
    db_acquire_timeout: float = 0.5
    """How long a request waits for a pool slot before answering 503."""
    cache_ttl_seconds: int = 30
    session_ttl_seconds: int = 3600
    test_user_email: str = "test@example.com"
    """The runbook's login smoke test user, accepted when no database is configured."""
    test_user_password: str = field(default="test", repr=False)
    log_capacity: int = 10_000
    namespace: str = "tradesense"
    """Labels of the simulated cAdvisor CPU counter: which (emulated) pod this app stands for."""
    pod: str = "backend-standin"
    container: str = "backend"
    cpu_seconds_per_request: float = 0.005
    """CPU charged per API request, so CPU follows load."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {self.port}")
        if self.cpu_seconds_per_request < 0:
            raise ValueError(f"cpu_seconds_per_request must not be negative, got {self.cpu_seconds_per_request}")
        if self.db_pool_size < 1:
            raise ValueError(f"db_pool_size must be at least 1, got {self.db_pool_size}")
        if self.db_acquire_timeout <= 0:
            raise ValueError(f"db_acquire_timeout must be positive, got {self.db_acquire_timeout}")
        if self.cache_ttl_seconds < 1 or self.session_ttl_seconds < 1:
            raise ValueError("cache_ttl_seconds and session_ttl_seconds must be at least 1")
