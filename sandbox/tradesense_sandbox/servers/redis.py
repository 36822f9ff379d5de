"""A throwaway Redis 7 for tests that kill, flush or fill the cache (the shared one is never touched)."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tradesense_sandbox.servers.process import ServerProcess, require_binary


class ThrowawayRedis(ServerProcess):
    """redis-server on 127.0.0.1:<free port>; no persistence unless asked, optional maxmemory."""

    name = "redis"

    def __init__(
        self,
        *,
        maxmemory: str | None = None,
        maxmemory_policy: str = "noeviction",
        appendonly: bool = False,
        binary: str = "/usr/bin/redis-server",
        port: int | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        self.binary = require_binary(binary, "Debian package redis-server (make deps)")
        self.maxmemory = maxmemory
        self.maxmemory_policy = maxmemory_policy
        self.appendonly = appendonly
        super().__init__(port=port, startup_timeout=startup_timeout)

    def url(self, db: int = 0) -> str:
        """redis:// URL for database index `db`."""
        return f"redis://{self.host}:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        """A synchronous client that does not retry (a test wants to see a dead server at once); caller closes it."""
        return redis.Redis(host=self.host, port=self.port, db=db, socket_timeout=5, retry=Retry(NoBackoff(), 0))

    def command(self) -> list[str]:
        argv = [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.workdir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--loglevel", "warning",
        ]
        if self.maxmemory is not None:
            argv += ["--maxmemory", self.maxmemory, "--maxmemory-policy", self.maxmemory_policy]
        return argv

    def probe(self) -> bool:
        # Short timeouts: whatever answers on the port during start-up may not be our server.
        probe = redis.Redis(
            host=self.host, port=self.port, socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
        )
        try:
            with probe:
                return bool(probe.ping())
        except redis.RedisError:
            return False
