"""What Prometheus and Alertmanager share as throwaway servers: both come from the Prometheus project and run the
same way — one binary started with a YAML file generated in the working directory, a data directory beside it,
an HTTP API on `--web.listen-address` that answers `/-/ready` once it serves.

Owns that launch and the addresses derived from it; what goes into each configuration, and each server's API
helpers, stay in `prometheus.py` and `alertmanager.py`. Nothing here talks to the shared services.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import yaml

from tradesense_sandbox.servers.probes import http_ok
from tradesense_sandbox.servers.process import ServerProcess, require_binary


class PrometheusProjectServer(ServerProcess):
    """A Prometheus-project binary on a free loopback port, configured by `config()` written as `<name>.yml`."""

    storage_flag: ClassVar[str]
    """The flag that takes the data directory (`--storage.tsdb.path` for Prometheus, `--storage.path` for Alertmanager)."""
    extra_flags: ClassVar[tuple[str, ...]] = ()
    """Flags of this binary only, passed after the listen address."""

    def __init__(self, binary: str, package: str, *, port: int | None, startup_timeout: float) -> None:
        self.binary = require_binary(binary, f"Debian package {package} (make deps)")
        super().__init__(port=port, startup_timeout=startup_timeout)

    @property
    def url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://{self.host}:{self.port}"

    @property
    def target(self) -> str:
        """`host:port`, the form a scrape or alerting config wants."""
        return f"{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        """The generated configuration file."""
        return self.workdir / f"{self.name}.yml"

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """The configuration as data (written to `config_path`)."""

    def write_config(self) -> None:
        """(Re)write `config_path` from `config()`."""
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))

    def prepare(self) -> None:
        (self.workdir / "data").mkdir()
        self.write_config()

    def command(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"{self.storage_flag}={self.workdir / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            *self.extra_flags,
            "--log.level=warn",
        ]

    def probe(self) -> bool:
        return http_ok(f"{self.url}/-/ready")
