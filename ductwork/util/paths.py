"""Paths as messages show them: relative to the working directory, as the user named them."""

from __future__ import annotations

import os
from pathlib import Path


def display_path(path: str | os.PathLike[str]) -> str:
    """`path` relative to the working directory when it is below it, else as given.

    Symbolic links are kept, not resolved: `specs/shop` stays `specs/shop` when it links
    elsewhere, so a message names the file the user opened.
    """
    absolute = Path(os.path.abspath(path))
    for cwd in (Path(os.path.abspath(os.curdir)), Path.cwd().resolve()):
        try:
            return str(absolute.relative_to(cwd))
        except ValueError:
            continue
    return str(path)
