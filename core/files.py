"""Atomic file writes: a reader, or a crash, never leaves half a file in the final place."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from core.errors import ProblemsError


def write_text_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_npz_atomically(path: Path, **arrays: np.ndarray) -> None:
    """`np.savez_compressed` to a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez_compressed(stream, **arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json_atomically(path: Path, document: object, sort_keys: bool = False) -> None:
    write_text_atomically(path, json.dumps(document, indent=4, sort_keys=sort_keys))


def read_json(path: Path, error: type[ProblemsError], what: str) -> object:
    """Parse a JSON file; a missing or malformed file raises `error` naming the file and `what` it is."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as problem:
        raise error(f"{path.name}: not valid JSON ({problem})") from None
