"""ops.tradesense.io/v1alpha1: spec and status models of the three kinds.

Models only: no I/O, and no imports from outside `api`.
"""
