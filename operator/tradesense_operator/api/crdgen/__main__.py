"""`python -m tradesense_operator.api.crdgen --out DIR | --check DIR`.

The command line only; building and rendering live in crd.py and files.py.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tradesense_operator.api.crdgen.files import check_dir, write_dir


def main(argv: Sequence[str] | None = None) -> int:
    """Write (--out) or verify (--check) the generated CRDs; 1 when --check finds drift."""
    parser = argparse.ArgumentParser(prog="python -m tradesense_operator.api.crdgen", description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out", type=Path, metavar="DIR", help="write the CRDs into DIR")
    mode.add_argument("--check", type=Path, metavar="DIR", help="fail with a diff when DIR differs from the models")
    args = parser.parse_args(argv)
    if args.out is not None:
        for path in write_dir(args.out):
            print(f"wrote {path}")
        return 0
    problems = check_dir(args.check)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{args.check}/ drifted from the models: run `make crds` and commit the result", file=sys.stderr)
        return 1
    print(f"{args.check}/ matches the models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
