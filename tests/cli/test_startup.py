"""The command line and the API process start without torch, and every error hint names a real class."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from cli.error_hints import HINTS, hint_for
from core.training.checkpoints import CheckpointError

TORCH_FREE = """
import sys
from cli.main import build_parser
from cli.serve_commands import serve_http
from app.main import create_app
build_parser()
create_app
loaded = sorted(name for name in sys.modules if name == "torch" or name.startswith("torch."))
print(len(loaded))
"""


def test_parser_and_api_process_do_not_load_torch() -> None:
    result = subprocess.run([sys.executable, "-c", TORCH_FREE], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "0", "torch was imported by the CLI parser or the API"


@pytest.mark.parametrize("qualified_name", sorted(HINTS))
def test_every_hint_names_an_exception_class(qualified_name: str) -> None:
    module, _, name = qualified_name.rpartition(".")
    kind = getattr(importlib.import_module(module), name)
    assert isinstance(kind, type) and issubclass(kind, BaseException)
    assert f"{kind.__module__}.{kind.__qualname__}" == qualified_name  # not a re-export


def test_hint_follows_the_class_and_falls_back_to_help() -> None:
    assert "--resume" in hint_for(CheckpointError("no checkpoint"), "train")
    assert hint_for(FileNotFoundError("x"), "plan") == HINTS["builtins.FileNotFoundError"]
    assert hint_for(ValueError("x"), "plan") == "`nnsvc plan --help` explains every option"
