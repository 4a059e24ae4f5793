"""Checks docker-compose.yml, the Dockerfile and .env.example against the code, since no Docker engine
runs where the tests do: services, `nnsvc` commands (parsed by the real parser), NNSVC_ variable
names and defaults, ports, image stages and the torch pin. `check_deployment` returns one line per
problem; an empty list means consistent.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter

from cli.main import build_parser
from service.settings import Settings

SERVICES = {"postgres", "redis", "migrate", "api", "worker-cpu", "worker-gpu"}
SUBCOMMAND = {"migrate": "migrate", "api": "api", "worker-cpu": "worker", "worker-gpu": "worker"}
QUEUE = {"worker-cpu": "cpu", "worker-gpu": "gpu"}
AFTER_MIGRATION = ("api", "worker-cpu", "worker-gpu")
ENV_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", re.MULTILINE)
INTERPOLATION = re.compile(r"\$\{([A-Z][A-Z0-9_]*)")
NNSVC_NAME = re.compile(r"\bNNSVC_[A-Z0-9_]+")


@dataclass(frozen=True)
class Deployment:
    compose: dict[str, Any]
    compose_text: str
    dockerfile: str
    env_example: str
    setup_script: str

    @classmethod
    def read(cls, root: Path) -> Deployment:
        compose_text = (root / "docker-compose.yml").read_text()
        return cls(
            compose=yaml.safe_load(compose_text),
            compose_text=compose_text,
            dockerfile=(root / "Dockerfile").read_text(),
            env_example=(root / ".env.example").read_text(),
            setup_script=(root / "scripts" / "setup-venv.sh").read_text(),
        )

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        return self.compose.get("services") or {}

    @property
    def stages(self) -> set[str]:
        return set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", self.dockerfile, re.MULTILINE | re.IGNORECASE))


def check_deployment(root: Path) -> list[str]:
    deployment = Deployment.read(root)
    return [
        *check_services(deployment),
        *check_commands(deployment),
        *check_variables(deployment),
        *check_ports(deployment),
        *check_images(deployment),
    ]


def check_services(deployment: Deployment) -> list[str]:
    services = deployment.services
    problems = [f"docker-compose.yml: service {name} is missing" for name in sorted(SERVICES - set(services))]
    for name in ("postgres", "redis"):
        service = services.get(name, {})
        if not (service.get("healthcheck") or {}).get("test"):
            problems.append(f"docker-compose.yml: {name} has no health check")
        named = deployment.compose.get("volumes") or {}
        if not any(str(volume).split(":")[0] in named for volume in service.get("volumes", [])):
            problems.append(f"docker-compose.yml: {name} keeps its data in no named volume")
    if _condition(services.get("migrate", {}), "postgres") != "service_healthy":
        problems.append("docker-compose.yml: migrate must wait for postgres to be healthy")
    for name in AFTER_MIGRATION:
        if name in services and _condition(services[name], "migrate") != "service_completed_successfully":
            problems.append(f"docker-compose.yml: {name} must start after migrate completed successfully")
    devices = services.get("worker-gpu", {}).get("deploy", {}).get("resources", {}).get("reservations", {})
    if not any(
        device.get("driver") == "nvidia" and "gpu" in device.get("capabilities", [])
        for device in devices.get("devices", [])
    ):
        problems.append("docker-compose.yml: worker-gpu reserves no NVIDIA GPU")
    return problems


def check_commands(deployment: Deployment) -> list[str]:
    """Each nnsvc container's command must parse as the right `nnsvc` subcommand."""
    if not re.search(r'^ENTRYPOINT \["nnsvc"\]', deployment.dockerfile, re.MULTILINE):
        return ['Dockerfile: the entry point must be ["nnsvc"], which the compose commands are arguments of']
    problems = []
    for name, expected in SUBCOMMAND.items():
        service = deployment.services.get(name)
        if service is None:
            continue
        command = [str(part) for part in service.get("command", [])]
        if "entrypoint" in service:
            problems.append(f"docker-compose.yml: {name} replaces the image's nnsvc entry point")
        error = _parse_error(command)
        if error:
            problems.append(f"docker-compose.yml: {name} runs `nnsvc {' '.join(command)}`: {error}")
        elif command[0] != expected:
            problems.append(f"docker-compose.yml: {name} runs `nnsvc {command[0]}`, not `nnsvc {expected}`")
        if name in QUEUE and QUEUE[name] not in _option(command, "--queues", "").split(","):
            problems.append(f"docker-compose.yml: {name} does not serve the {QUEUE[name]} queue")
    for cmd in re.findall(r"^CMD (\[.*\])$", deployment.dockerfile, re.MULTILINE):
        if error := _parse_error(json.loads(cmd)):
            problems.append(f"Dockerfile: CMD {cmd}: {error}")
    return problems


def check_variables(deployment: Deployment) -> list[str]:
    """NNSVC_ names are settings; .env.example lists every setting with its true default."""
    fields = Settings.model_fields
    known = {f"NNSVC_{name.upper()}": name for name in fields}
    example = dict(ENV_LINE.findall(deployment.env_example))
    problems = []
    for where, text in [
        ("docker-compose.yml", deployment.compose_text),
        ("Dockerfile", deployment.dockerfile),
        (".env.example", deployment.env_example),
    ]:
        problems += [
            f"{where}: {name} is not a setting of service/settings.py"
            for name in sorted(set(NNSVC_NAME.findall(text)) - set(known))
        ]
    for variable, field in known.items():
        if variable not in example:
            problems.append(f".env.example: the setting {field} ({variable}) is missing")
        elif example[variable] and not _is_default(field, example[variable]):
            problems.append(f".env.example: {variable}={example[variable]} is not the default of {field}")
    problems += [
        f"docker-compose.yml: ${{{name}}} is not defined in .env.example"
        for name in sorted(set(INTERPOLATION.findall(deployment.compose_text)) - set(example))
    ]
    return problems


def check_ports(deployment: Deployment) -> list[str]:
    """The API's port agrees everywhere: nnsvc api's default, compose's command and mapping, the image."""
    api = deployment.services.get("api", {})
    command = [str(part) for part in api.get("command", [])]
    default = api_default_port()
    problems = [] if default else ["cli: `nnsvc api` has no --port option with a default to compare with"]
    port = default or int(_option(command, "--port", "0"))
    if int(_option(command, "--port", str(port))) != port:
        problems.append(f"docker-compose.yml: api listens on another port than nnsvc api's default {port}")
    for mapping in api.get("ports", []):
        if int(str(mapping).rsplit(":", 1)[-1]) != port:
            problems.append(f"docker-compose.yml: api publishes {mapping}, not container port {port}")
    exposed = {int(p) for p in re.findall(r"^EXPOSE (\d+)", deployment.dockerfile, re.MULTILINE)}
    checked = {int(p) for p in re.findall(r"http://127\.0\.0\.1:(\d+)/healthz", deployment.dockerfile)}
    if exposed != {port} or checked != {port}:
        problems.append(
            f"Dockerfile: EXPOSE {sorted(exposed)}, health check {sorted(checked)}: not port {port}"
        )
    return problems


def check_images(deployment: Deployment) -> list[str]:
    stages = deployment.stages
    problems = []
    for name in SUBCOMMAND:
        service = deployment.services.get(name, {})
        target = (service.get("build") or {}).get("target")
        if target not in stages:
            problems.append(f"docker-compose.yml: {name} builds stage {target}, which the Dockerfile lacks")
        root = (service.get("environment") or {}).get("NNSVC_DATA_ROOT")
        if not any(str(volume).split(":")[1:2] == [root] for volume in service.get("volumes", [])):
            problems.append(f"docker-compose.yml: {name} mounts no volume at its data root {root}")
    pinned = re.search(r"torch==([\w.+]+)", deployment.setup_script)
    built = re.search(r"^ARG TORCH_VERSION=(\S+)", deployment.dockerfile, re.MULTILINE)
    if not (pinned and built and pinned[1] == built[1]):
        problems.append("Dockerfile: ARG TORCH_VERSION differs from the torch pin of scripts/setup-venv.sh")
    return problems


def api_default_port() -> int | None:
    subcommands = next(
        action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)
    )
    api = subcommands.choices.get("api")
    ports = [action.default for action in (api._actions if api else []) if "--port" in action.option_strings]
    return int(ports[0]) if ports and ports[0] is not None else None


def _parse_error(command: list[str]) -> str | None:
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            build_parser().parse_args(command)
    except SystemExit:
        return stderr.getvalue().strip().splitlines()[-1] if stderr.getvalue().strip() else "not a command"
    return None


def _option(command: list[str], name: str, default: str) -> str:
    return command[command.index(name) + 1] if name in command[:-1] else default


def _condition(service: dict[str, Any], dependency: str) -> str | None:
    depends_on = service.get("depends_on") or {}
    return depends_on.get(dependency, {}).get("condition") if isinstance(depends_on, dict) else None


def _is_default(field: str, shown: str) -> bool:
    info = Settings.model_fields[field]
    try:
        value: Any = json.loads(shown)
    except json.JSONDecodeError:
        value = shown
    return TypeAdapter(info.annotation).validate_python(value) == info.get_default(call_default_factory=True)
