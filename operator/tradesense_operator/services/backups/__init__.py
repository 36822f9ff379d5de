"""Backups: run, verify, list, retain, restore and schedule them (domain decisions + injected clients).

The engine is synchronous (it streams bytes between a child process, threads and storage); async callers
run it through `asyncio.to_thread`, so the operator's event loop never blocks on a dump.
"""
