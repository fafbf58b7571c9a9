"""Atomic file writing: a reader sees either the old file or the whole new one, never half."""

import contextlib
import json
import os
from pathlib import Path

from musicgen.errors import UserError


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success rename it over `path`.

    The temporary name keeps the suffix (Keras insists on `.keras`, NumPy on
    `.npz`) and starts with a dot so no reader globbing the folder picks it up.
    On failure the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def write_text(path, text):
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_json(path, data):
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_user_json(path, missing_message):
    """JSON from a file a user pointed at: a missing or malformed file is a UserError, not a traceback."""
    try:
        return read_json(path)
    except FileNotFoundError:
        raise UserError(missing_message) from None
    except (OSError, ValueError) as error:
        raise UserError(f"{path} is not valid JSON ({error})") from None
