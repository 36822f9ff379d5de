"""The dashboard: an aiohttp server (server.py) and its static page (static/: vanilla HTML, JS, CSS).

Like the whole console it acts with the user's kubeconfig and must not import kopf, the handlers, the bridge or
the services (an import-linter contract).
"""
