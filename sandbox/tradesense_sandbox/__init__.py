"""Embedded test and demo world: emulated Kubernetes API, stand-in TradeSense app, fixtures.

The operator's own code never imports this package (an import-linter contract enforces it); the
tests and `make demo` do.
"""
