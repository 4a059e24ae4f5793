"""Each layer only calls the one below it (ARCHITECTURE.md); nnU-Net v2 is an oracle, never imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "core": {
        "app",
        "worker",
        "cli",
        "sqlalchemy",
        "fastapi",
        "celery",
        "nnunetv2",
        "skimage",
        "dynamic_network_architectures",
        "batchgeneratorsv2",
        "sklearn",
        "service",
    },
    "service": {"app", "worker", "cli", "core", "torch", "fastapi", "nnunetv2"},
    "cli": {"nnunetv2", "dynamic_network_architectures"},
    "app": {"nnunetv2", "torch", "worker", "dynamic_network_architectures"},
    "worker": {"nnunetv2", "app", "dynamic_network_architectures"},
}


def imported_top_level_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    return modules


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_nothing_forbidden(package: str) -> None:
    offences = {
        str(path.relative_to(ROOT)): sorted(imported_top_level_modules(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {path: found for path, found in offences.items() if found} == {}


def test_the_scanner_sees_imports() -> None:
    # Guards the test above against passing vacuously.
    assert {"numpy", "scipy"} <= imported_top_level_modules(ROOT / "core" / "cropping.py")
