"""The dashboard: an aiohttp server (server.py) and its static page (static/: vanilla HTML, JS, CSS)."""
