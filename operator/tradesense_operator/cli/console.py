"""`kubectl tradesense get|approve|cancel|retry|plan|report|dashboard` (and `tradesense-operator console …`).

The kubectl plugin: the same commands installed as the `kubectl-tradesense` script (so `kubectl tradesense`
finds it on PATH) and as the `console` group of `tradesense-operator`. It acts with the user's kubeconfig
and context; kubectl habits apply: `-o json|yaml`, no colour unless stdout is a terminal (and NO_COLOR is
unset), errors on one line on stderr, exit 1 on failure and 2 on usage errors.
Owns argument parsing and output only; must not compute patches or views itself (the console package
does) nor use the operator's identity.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, cast

import yaml

from tradesense_operator.cli import plan
from tradesense_operator.clients.errors import ClientError, NotFound
from tradesense_operator.clients.kube import JsonDict
from tradesense_operator.console.actions import Refused, approve_patch, cancel_patch, retry_refusal
from tradesense_operator.console.cluster import ConsoleCluster, KubeconfigError
from tradesense_operator.console.postmortem import build_postmortem
from tradesense_operator.console.tree import render_incident, render_overview
from tradesense_operator.console.view import IncidentView, incident_view, newest_first

PROG = "kubectl tradesense"
_CLEAR = "\x1b[H\x1b[2J"


class CommandFailed(Exception):
    """A failure already phrased for the user (one line)."""


def use_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", help="namespace (default: the context's namespace)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context (default: the current context)")


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The plugin's commands (except `plan`, which the caller adds from cli.plan)."""
    get = subparsers.add_parser("get", help="incidents as a tree of steps; without NAME all incidents and policies")
    get.add_argument("name", nargs="?", help="incident name (default: every incident of the namespace)")
    get.add_argument("-w", "--watch", action="store_true", help="redraw on every change (watch events)")
    get.add_argument("-o", "--output", choices=("tree", "json", "yaml"), default="tree")
    _connection_flags(get)
    get.set_defaults(func=_sync(_get))

    approve = subparsers.add_parser("approve", help="approve destructive steps (adds them to spec.approvals)")
    approve.add_argument("name", help="incident name")
    approve.add_argument("steps", nargs="+", metavar="STEP", help="step ids to approve")
    _connection_flags(approve)
    approve.set_defaults(func=_sync(_approve))

    cancel = subparsers.add_parser("cancel", help="cancel an incident (sets spec.cancel)")
    cancel.add_argument("name", help="incident name")
    _connection_flags(cancel)
    cancel.set_defaults(func=_sync(_cancel))

    retry = subparsers.add_parser("retry", help="explain a step's retry schedule (the engine retries by itself)")
    retry.add_argument("name", help="incident name")
    retry.add_argument("step", help="step id")
    _connection_flags(retry)
    retry.set_defaults(func=_sync(_retry))

    report = subparsers.add_parser("report", help="the incident's postmortem (Markdown or HTML)")
    report.add_argument("name", help="incident name")
    report.add_argument("-o", "--output", choices=("md", "html"), default="md")
    report.add_argument("--prometheus", help="Prometheus base URL: plot the key metrics of the incident window")
    report.add_argument("--chart", type=Path,
                        help="where Markdown's chart PNG goes (default: NAME-metrics.png in the current directory)")
    _connection_flags(report)
    report.set_defaults(func=_sync(_report))

    dashboard = subparsers.add_parser("dashboard", help="serve the live incident view on 127.0.0.1")
    dashboard.add_argument("--address", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    dashboard.add_argument("--port", type=int, default=0, help="port (default: a free one, printed)")
    dashboard.add_argument("--open", action="store_true", help="open the page in the default browser")
    _connection_flags(dashboard)
    dashboard.set_defaults(func=_sync(_dashboard))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`tradesense-operator console …`: the plugin's commands for those who do not use kubectl."""
    parser = subparsers.add_parser("console", help="the SRE console (also installed as kubectl-tradesense)")
    add_commands(parser.add_subparsers(dest="console_command", required=True))


def build_parser() -> argparse.ArgumentParser:
    """The `kubectl tradesense` parser."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    plan.register(subparsers)
    add_commands(subparsers)
    return parser


def kubectl_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `kubectl-tradesense` script."""
    args = build_parser().parse_args(argv)
    return cast(Callable[[argparse.Namespace], int], args.func)(args)


# -- running -------------------------------------------------------------------------------------


def _sync(command: Callable[[argparse.Namespace, ConsoleCluster], Awaitable[int]]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(_with_cluster(command, args))
        except KeyboardInterrupt:
            return 130
        except (ClientError, KubeconfigError, Refused, CommandFailed, OSError) as exc:
            message = " ".join(str(exc).split())
            print(f"error: {message}", file=sys.stderr)
            return 1
    return run


async def _with_cluster(command: Callable[[argparse.Namespace, ConsoleCluster], Awaitable[int]],
                        args: argparse.Namespace) -> int:
    cluster = await ConsoleCluster.connect(kubeconfig=args.kubeconfig, context=args.context, namespace=args.namespace)
    try:
        return await command(args, cluster)
    finally:
        await cluster.close()


def _now() -> datetime:
    return datetime.now(UTC)


def _dump(data: Any, output: str) -> str:
    if output == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


async def _optional_list(fetch: Callable[[], Coroutine[Any, Any, list[JsonDict]]]) -> list[JsonDict]:
    """Policies are extra context: a missing CRD shows nothing, a refusal is said once on stderr."""
    try:
        return await fetch()
    except NotFound:
        return []
    except ClientError as exc:
        print(f"warning: {' '.join(str(exc).split())}", file=sys.stderr)
        return []


# -- get -----------------------------------------------------------------------------------------


async def _get(args: argparse.Namespace, cluster: ConsoleCluster) -> int:
    if args.watch:
        return await _watch(args, cluster)
    out = sys.stdout
    if args.name:
        body = await cluster.incident(args.name)
        out.write(_dump(body, args.output) if args.output != "tree" else
                  render_incident(incident_view(body), now=_now(), colour=use_colour(out)) + "\n")
        return 0
    items = await cluster.incidents()
    if args.output != "tree":
        out.write(_dump({"apiVersion": "v1", "kind": "List", "items": items}, args.output))
        return 0
    backups = await _optional_list(cluster.backup_policies)
    scalings = await _optional_list(cluster.scaling_policies)
    views = newest_first([incident_view(i) for i in items])
    out.write(render_overview(views, backups, scalings, now=_now(), colour=use_colour(out)) + "\n")
    return 0


async def _watch(args: argparse.Namespace, cluster: ConsoleCluster) -> int:
    """Redraw on every watch event; with NAME, exit when the incident finishes (0 Succeeded, 1 otherwise)."""
    out = sys.stdout
    colour = use_colour(out)
    bodies: dict[str, JsonDict] = {}
    backups: list[JsonDict] = []
    scalings: list[JsonDict] = []
    async for kind, obj in cluster.watch_incidents(args.name):
        if kind == "SNAPSHOT":
            bodies = {str(i["metadata"]["name"]): i for i in obj["items"]}
            if not args.name:
                backups = await _optional_list(cluster.backup_policies)
                scalings = await _optional_list(cluster.scaling_policies)
        elif kind == "DELETED":
            bodies.pop(str(obj["metadata"]["name"]), None)
        else:
            bodies[str(obj["metadata"]["name"])] = obj
        if args.output != "tree":
            if kind != "SNAPSHOT":
                out.write(json.dumps({"type": kind, "object": obj}, ensure_ascii=False) + "\n"
                          if args.output == "json" else "---\n" + _dump({"type": kind, "object": obj}, "yaml"))
            out.flush()
        else:
            _redraw(out, colour, args.name, bodies, backups=backups, scalings=scalings)
        if args.name:
            if args.name not in bodies:
                if kind == "DELETED":
                    raise CommandFailed(f"tsi/{args.name} was deleted")
                raise CommandFailed(f'tradesenseincidents "{args.name}" not found in namespace {cluster.namespace}')
            view = incident_view(bodies[args.name])
            if view.terminal:
                return 0 if view.phase.value == "Succeeded" else 1
    return 0  # pragma: no cover  # the watch only ends by an exception


def _redraw(out: TextIO, colour: bool, name: str | None, bodies: dict[str, JsonDict],
            *, backups: list[JsonDict], scalings: list[JsonDict]) -> None:
    now = _now()
    if name:
        if name not in bodies:
            return
        text = render_incident(incident_view(bodies[name]), now=now, colour=colour)
    else:
        views: list[IncidentView] = newest_first([incident_view(b) for b in bodies.values()])
        text = render_overview(views, backups, scalings, now=now, colour=colour)
    out.write((_CLEAR if colour else "\n") + text + "\n")
    out.flush()


# -- actions ---------------------------------------------------------------------------------------


async def _approve(args: argparse.Namespace, cluster: ConsoleCluster) -> int:
    body = await cluster.incident(args.name)
    await cluster.patch_incident(args.name, approve_patch(body, args.steps))
    print(f"tsi/{args.name}: approved {', '.join(args.steps)}")
    return 0


async def _cancel(args: argparse.Namespace, cluster: ConsoleCluster) -> int:
    body = await cluster.incident(args.name)
    await cluster.patch_incident(args.name, cancel_patch(body))
    print(f"tsi/{args.name}: cancel requested")
    return 0


async def _retry(args: argparse.Namespace, cluster: ConsoleCluster) -> int:
    raise retry_refusal(await cluster.incident(args.name), args.step, now=_now())


# -- report and dashboard ----------------------------------------------------------------------


async def _report(args: argparse.Namespace, cluster: ConsoleCluster) -> int:
    body = await cluster.incident(args.name)
    result = await build_postmortem(body, output=args.output, now=_now(), prometheus=args.prometheus,
                                    chart_path=args.chart)
    sys.stdout.write(result.text)
    if result.chart_path is not None:
        print(f"chart written to {result.chart_path}", file=sys.stderr)
    return 0


async def _dashboard(args: argparse.Namespace, cluster: ConsoleCluster) -> int:
    from tradesense_operator.console.dashboard.server import serve  # noqa: PLC0415  # aiohttp web only here

    await serve(cluster, address=args.address, port=args.port, open_browser=args.open)
    return 0
