"""Importing this module registers every kopf handler of the operator (one import per kind)."""

from tradesense_operator.handlers import startup  # noqa: F401  (settings and Runtime)
