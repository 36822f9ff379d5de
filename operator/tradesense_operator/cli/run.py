"""`tradesense-operator run`: start the operator against the current kubeconfig context."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `run` sub-command."""
    parser = subparsers.add_parser("run", help="run the operator against the current kubeconfig context")
    parser.add_argument("--namespace", "-n", action="append", default=None,
                        help="watch only these namespaces (default: all)")
    parser.add_argument("--standalone", action="store_true", help="no peering/leader election")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import kopf  # noqa: PLC0415  (imported here so `plan` and `backup` start fast)

    import tradesense_operator.handlers.registry  # noqa: F401, PLC0415  (registers the kopf handlers)

    kopf.run(standalone=args.standalone, namespaces=args.namespace or [], clusterwide=not args.namespace)
    return 0
