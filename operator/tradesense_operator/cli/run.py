"""`tradesense-operator run`: start the operator against the current kubeconfig (or in-cluster) context."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `run` sub-command."""
    parser = subparsers.add_parser("run", help="run the operator against the current kubeconfig context")
    parser.add_argument("--namespace", "-n", action="append", default=None,
                        help="watch only these namespaces (default: all)")
    parser.add_argument("--standalone", action="store_true",
                        help="skip peering: only for a single replica or local runs")
    parser.add_argument("--liveness", default="http://0.0.0.0:8080/healthz",
                        help="kopf liveness endpoint (the Deployment's livenessProbe)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # Heavy imports here, so `plan` and `backup` start fast and work without kopf's side effects.
    import kopf  # noqa: PLC0415

    import tradesense_operator.handlers.registry  # noqa: F401, PLC0415  (registers the kopf handlers)
    from tradesense_operator.config import Settings  # noqa: PLC0415
    from tradesense_operator.observability.logs import configure_logging  # noqa: PLC0415

    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"tradesense-operator: {exc}")
        return 2
    configure_logging(log_format=settings.log_format, level=settings.log_level)
    kopf.run(
        standalone=args.standalone,
        namespaces=args.namespace or [],
        clusterwide=not args.namespace,
        liveness_endpoint=args.liveness,
    )
    return 0
