"""Embedded test and demo world: emulated Kubernetes API, stand-in TradeSense app, throwaway servers, the demo.

Its own distribution (`sandbox/pyproject.toml`, `tradesense-sandbox`), never part of the operator's wheel or image.
It may import the operator (it drives the real kopf handlers); the operator never imports it, which import-linter
and tests/unit/wheels both check. The tests, `make demo` and the benchmarks use it.
"""
