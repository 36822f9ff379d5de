"""`tradesense-operator run` arguments: leader election is the default, `--standalone` the explicit opt-out."""

from __future__ import annotations

from tradesense_operator.cli import build_parser


def test_leader_election_is_the_default_and_standalone_opts_out() -> None:
    assert not build_parser().parse_args(["run"]).standalone
    assert build_parser().parse_args(["run", "--standalone"]).standalone


def test_standalone_and_leader_elect_together_are_refused_before_anything_starts() -> None:
    args = build_parser().parse_args(["run", "--standalone", "--leader-elect"])
    assert args.func(args) == 2
