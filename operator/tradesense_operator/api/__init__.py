"""API types: pydantic models that are the single source of the CRDs. Pure data, no I/O."""
