"""The Dockerfile, checked as text: there is no container engine on these machines to build it.

Covers: multi-stage (a builder that makes wheels, a runtime that installs them without an index),
python:3.11-slim on bookworm (the Debian release with postgresql-client-15), the PostgreSQL 15 client
tools, a numeric non-root USER that matches the Deployment, exec-form ENTRYPOINT of the console
script with `run` as the default command, exposed ports matching the Deployment, and a .dockerignore
that keeps the context to what the wheel needs.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Stage:
    """One FROM … section."""

    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args_of(self, keyword: str) -> list[str]:
        return [args for instruction, args in self.instructions if instruction == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with line continuations joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            name, _, default = args.partition("=")
            global_args[name.strip()] = default.strip()
        elif keyword == "FROM":
            parts = args.split()
            base = re.sub(r"\$\{(\w+)\}", lambda match: global_args[match.group(1)], parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(base=base, name=name))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, args.strip()))
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text(encoding="utf-8"))[1]


@pytest.fixture(scope="module")
def runtime(stages: list[Stage]) -> Stage:
    return stages[-1]


def test_parser_joins_continuations_and_resolves_args() -> None:
    text = "ARG BASE=img:1\nFROM ${BASE} AS one\n# note\nRUN a \\\n    # inner\n    && b\nFROM one\nUSER 1\n"
    global_args, parsed = parse_dockerfile(text)
    assert global_args == {"BASE": "img:1"}
    assert [(stage.base, stage.name) for stage in parsed] == [("img:1", "one"), ("one", "1")]
    assert parsed[0].instructions == [("RUN", "a && b")]


def test_multi_stage_builder_makes_wheels_runtime_installs_them_offline(stages: list[Stage], runtime: Stage) -> None:
    assert len(stages) >= 2
    builder = stages[0]
    assert builder.name == "builder"
    assert any("pip wheel" in args for args in builder.args_of("RUN"))
    install = [args for args in runtime.args_of("RUN") if "pip install" in args]
    assert install
    assert "--no-index" in install[0]
    assert "from=builder" in install[0]


def test_every_stage_is_python_311_slim_on_bookworm(stages: list[Stage]) -> None:
    for stage in stages:
        assert stage.base.startswith("python:3.11-slim"), stage.base
        assert stage.base.endswith("-bookworm"), "bookworm is the Debian release that ships postgresql-client-15"


def test_runtime_has_the_postgresql_15_client_tools(runtime: Stage) -> None:
    apt = [args for args in runtime.args_of("RUN") if "apt-get install" in args]
    assert apt, "no apt-get install in the runtime stage"
    packages = shlex.split(apt[0].split("apt-get install", 1)[1].split("&&", 1)[0])
    assert "postgresql-client-15" in packages
    assert "--no-install-recommends" in packages
    assert "rm -rf /var/lib/apt/lists/*" in apt[0]


def test_postgresql_15_binaries_come_first_on_path(runtime: Stage) -> None:
    env = " ".join(runtime.args_of("ENV"))
    assert re.search(r"PATH=/usr/lib/postgresql/15/bin:\$PATH", env)


def test_runtime_user_is_numeric_non_root_and_matches_the_deployment(runtime: Stage) -> None:
    (user,) = runtime.args_of("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert int(uid) != 0
    assert (not gid or gid.isdigit())
    deployment = yaml.safe_load((ROOT / "deploy" / "manager" / "deployment.yaml").read_text(encoding="utf-8"))
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)
    assert any(f"--uid {uid}" in args for args in runtime.args_of("RUN")), "the user must exist in /etc/passwd"
    after_user = [keyword for keyword, _ in runtime.instructions[[k for k, _ in runtime.instructions].index("USER"):]]
    assert "RUN" not in after_user, "everything after USER runs as the operator, so installs belong before it"


def test_entrypoint_is_the_console_script_in_exec_form(runtime: Stage) -> None:
    (entrypoint,) = runtime.args_of("ENTRYPOINT")
    (command,) = runtime.args_of("CMD")
    assert json.loads(entrypoint) == ["tradesense-operator"]
    assert json.loads(command) == ["run"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert "tradesense-operator" in scripts


def test_exposed_ports_match_the_deployment(runtime: Stage) -> None:
    exposed = {int(port) for args in runtime.args_of("EXPOSE") for port in args.split()}
    deployment = yaml.safe_load((ROOT / "deploy" / "manager" / "deployment.yaml").read_text(encoding="utf-8"))
    ports = {port["containerPort"] for port in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert exposed == ports


def test_json_logs_by_default(runtime: Stage) -> None:
    assert any("TSO_LOG_FORMAT=json" in args for args in runtime.args_of("ENV"))


def test_dockerignore_keeps_only_what_the_wheel_needs() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*", "allow-list: ignore everything, then re-include"
    assert {"!pyproject.toml", "!README.md", "!operator/"} <= set(lines)
    copied = [source for stage in parse_dockerfile((ROOT / "Dockerfile").read_text(encoding="utf-8"))[1]
              for args in stage.args_of("COPY") if not args.startswith("--from")
              for source in args.split()[:-1]]
    assert copied
    for source in copied:
        assert f"!{source}" in lines, f"COPY {source} is excluded by .dockerignore"
