"""The README says only what exists: its configuration table lists every setting, its command table
every `nnsvc` command, its API examples only routes the app has, and its files are there."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from app.main import create_app
from cli.main import build_parser
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_the_configuration_table_lists_every_setting_and_nothing_else() -> None:
    documented = re.findall(r"^\| `(NNSVC_[A-Z_]+)` \|", section("Configuration"), re.MULTILINE)
    assert sorted(documented) == sorted(f"NNSVC_{name.upper()}" for name in Settings.model_fields)


def test_the_command_table_lists_every_command() -> None:
    documented = set(re.findall(r"^\| `nnsvc ([a-z-]+)", section("Command line"), re.MULTILINE))
    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert documented == set(subcommands.choices)


def test_every_api_path_in_the_examples_is_a_route_of_the_app(tmp_path: Path) -> None:
    routes = create_app(Settings(_env_file=None, data_root=tmp_path)).openapi()["paths"]
    patterns = [re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$") for path in routes]
    mentioned = set(re.findall(r"(/v1/[A-Za-z0-9_{}/.-]*[A-Za-z0-9_}])", README))
    assert len(mentioned) > 15
    unknown = [path for path in mentioned if not any(pattern.match(path) for pattern in patterns)]
    assert unknown == []


def test_the_files_it_names_exist() -> None:
    named = set(re.findall(r"\b((?:scripts|examples|benchmarks|\.ci)/[\w.-]+\.(?:sh|py)|\.ci/run)\b", README))
    named |= {f"benchmarks/{module}.py" for module in re.findall(r"python -m benchmarks\.(\w+)", README)}
    assert {"scripts/demo.sh", "scripts/test.sh", "examples/pacs_bridge.py"} <= named
    assert [name for name in sorted(named) if not (ROOT / name).is_file()] == []
    examples = {f"examples/{path.name}" for path in (ROOT / "examples").glob("*.py")}
    assert examples <= named, "an example the README does not mention"
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
