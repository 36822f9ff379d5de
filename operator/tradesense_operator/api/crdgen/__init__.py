"""CRD generation: the pydantic models in `api.v1alpha1` are the single source of `crds/*.yaml`.

`python -m tradesense_operator.api.crdgen --out crds` writes the files; `--check crds` fails with a
diff when they drift from the models (`make crds` / `make crds-check`).

Reads only `api`: must not import the rest of the operator, so the CRDs depend on the models alone.
"""

from __future__ import annotations

from tradesense_operator.api.crdgen.crd import build_crd, openapi_schema
from tradesense_operator.api.crdgen.files import check_dir, render_files, write_dir
from tradesense_operator.api.crdgen.structural import SchemaConversionError, to_structural

__all__ = [
    "SchemaConversionError",
    "build_crd",
    "check_dir",
    "openapi_schema",
    "render_files",
    "to_structural",
    "write_dir",
]
