"""`python -m tradesense_sandbox.app --port N`: the stand-in backend as its own process.

The signing key and the database DSN come from the environment (TRADESENSE_SIGNING_KEY,
TRADESENSE_PG_DSN) rather than flags, so they never show up in `ps`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from tradesense_sandbox.app.config import AppConfig
from tradesense_sandbox.app.runner import StandinApp


def parse_args(argv: list[str] | None = None) -> AppConfig:
    """Command line (and environment) to an AppConfig."""
    parser = argparse.ArgumentParser(prog="python -m tradesense_sandbox.app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="listen port; 0 picks a free one and prints it")
    parser.add_argument("--redis-url", default=None, help="Redis for the cache and sessions (default: in memory)")
    parser.add_argument("--redis-prefix", default="", help="prefix for every Redis key")
    parser.add_argument("--version", dest="app_version", default="v1.0.0", help="version the app reports")
    parser.add_argument("--db-pool-size", type=int, default=10, help="database pool size")
    args = parser.parse_args(argv)
    return AppConfig(
        host=args.host,
        port=args.port,
        pg_dsn=os.environ.get("TRADESENSE_PG_DSN") or None,
        redis_url=args.redis_url,
        redis_prefix=args.redis_prefix,
        signing_key=os.environ.get("TRADESENSE_SIGNING_KEY") or None,
        version=args.app_version,
        db_pool_size=args.db_pool_size,
    )


async def serve(config: AppConfig) -> None:
    """Run until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with StandinApp(config) as app:
        sys.stdout.write(f"stand-in TradeSense app listening on {app.base_url}\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
