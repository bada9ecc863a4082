"""What command groups share: JSON options (inline or @FILE), the run store, secrets."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ductwork.errors import ConfigurationError, StoreError

if TYPE_CHECKING:
    from ductwork.store.protocol import RunStore


def read_json(text: str | None, what: str) -> Any:
    """The value of option `what` (e.g. "--input"): JSON text, or `@file.json`; None if absent.
    A file's JSON error names the file; inline text's error says how to quote it for a shell."""
    if text is None:
        return None
    source = None
    if text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text("utf-8")
        except OSError as e:
            raise ConfigurationError(f"{what}: cannot read {source}: {e.strerror or e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        where = f"({e.msg} at line {e.lineno} column {e.colno})"
        if source is not None:
            raise ConfigurationError(f"{source}: not valid JSON {where}") from None
        if "\n" not in text and len(text) < 4096 and Path(text).is_file():
            raise ConfigurationError(f"{what}: {text} is a file: write {what} @{text} to read "
                                     "it") from None
        if "double quotes" in e.msg and "'" in text:
            raise ConfigurationError(f"{what}: not valid JSON {where}: JSON writes names and "
                                     "text in double quotes, and the shell needs single quotes "
                                     "around it all: '{\"email\": \"ann@example.com\"}'") from None
        raise ConfigurationError(f"{what}: not valid JSON {where}; quote it for the shell: "
                                 "'{\"a\": 1}'") from None
    except (ValueError, RecursionError) as e:  # a 5,000-digit number, 10,000 nested lists
        reason = "nested too deeply" if isinstance(e, RecursionError) else str(e).split(";")[0]
        raise ConfigurationError(f"{source or what}: not usable JSON ({reason})") from None


# -- the run store ------------------------------------------------------------------------------
DEFAULT_STORE = "sqlite:///.ductwork/runs.db"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def store_url(given: str | None) -> tuple[str, str]:
    """(URL, where it came from) for --store: the option, else $DUCTWORK_STORE, else the
    default. A bare path (`runs.db`, `/var/lib/ductwork/runs.db`) is a SQLite file."""
    if given:
        raw, origin = given, "--store"
    elif os.environ.get("DUCTWORK_STORE"):
        raw, origin = os.environ["DUCTWORK_STORE"], "$DUCTWORK_STORE"
    else:
        raw, origin = DEFAULT_STORE, "the default store; give --store URL or set DUCTWORK_STORE"
    if raw == ":memory:" or not _SCHEME.match(raw):
        raw = "sqlite://:memory:" if raw == ":memory:" else "sqlite:///" + raw
    return raw, origin


async def require_store(store: RunStore, origin: str) -> None:
    """Raise unless `store` already holds a ductwork run store: a command that reads runs
    never creates one (a mistyped path would otherwise read as "no runs")."""
    from ductwork.store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        if store.path == ":memory:":
            return
        if not os.path.exists(store.path):
            raise StoreError(
                f"no run store at {store.path} ({origin}): the file does not exist. Check the "
                "path; a store is created by `ductwork run`, `ductwork worker` or `ductwork db "
                "upgrade`")
        if not sqlite_version(store.path):
            raise StoreError(f"{store.path} ({origin}) is not a ductwork run store (no "
                             "dw_meta table); check the path")
        return
    if type(store).__name__ != "PostgresStore":
        return  # a store of the user's own: it knows whether it exists
    from ductwork.store.postgres import PostgresStore, safe_url

    if isinstance(store, PostgresStore):
        probe = PostgresStore(store.url, min_size=0, max_size=1, migrate=False)
        if not await probe.schema_version():
            raise StoreError(
                f"no ductwork run store in {safe_url(store.url)} ({origin}): the database has "
                "no ductwork tables. Check the URL, or create them with `ductwork db upgrade "
                "--store URL`")


def sqlite_version(path: str) -> int:
    """The schema version of a SQLite run store file (0: missing, or not a run store)."""
    if path == ":memory:" or not os.path.exists(path):
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM dw_meta WHERE key='schema_version'").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        if "no such table" in str(e) or "not a database" in str(e):
            return 0
        raise StoreError(f"cannot read the SQLite store {path}: {e}") from None
    return int(row[0]) if row else 0


# -- secrets ------------------------------------------------------------------------------------
SECRET_PREFIX = "DUCTWORK_SECRET_"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # as in ${secrets.NAME}


def load_secrets(files: list[str] | None, environ: Mapping[str, str] | None = None
                 ) -> dict[str, str]:
    """The secrets of `run`/`worker`: each --secrets-file in order (a later one wins), then
    the DUCTWORK_SECRET_<NAME> variables, which win over every file (as an exported variable
    wins over a .env file). Messages name files, lines and keys, never a value."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for path in files or []:
        try:
            text = Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else "not UTF-8 text"
            raise ConfigurationError(f"--secrets-file {path}: cannot read it ({reason})") from None
        out.update(_yaml_secrets(path, text) if path.endswith((".yaml", ".yml"))
                   else _dotenv_secrets(path, text))
    out.update({k[len(SECRET_PREFIX):]: v for k, v in env.items()
                if k.startswith(SECRET_PREFIX) and len(k) > len(SECRET_PREFIX)})
    return out


def _yaml_secrets(path: str, text: str) -> dict[str, str]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigurationError(f"{path}{where}: not valid YAML; a secrets file maps each "
                                 "name to its value (STRIPE_KEY: sk_live_...)") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: a secrets file maps each name to its value "
                                 "(STRIPE_KEY: sk_live_...)")
    out: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not _NAME.match(key):
            raise ConfigurationError(f"{path}: {str(key)!r} is not a secret name (letters, "
                                     "digits and _, as in ${secrets.NAME})")
        if isinstance(value, dict | list) or value is None:
            raise ConfigurationError(f"{path}: the value of {key} must be a single text, "
                                     "not a mapping, a list or empty")
        out[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def _dotenv_secrets(path: str, text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _NAME.match(key):
            raise ConfigurationError(f"{path}:{n}: expected NAME=VALUE (a dotenv file; or "
                                     "give a .yaml file)")
        value = value.strip()
        if value[:1] in ("'", '"'):
            quote = value[0]
            end = value.find(quote, 1)
            while quote == '"' and end > 0 and value[end - 1] == "\\":
                end = value.find(quote, end + 1)
            if end < 0:
                raise ConfigurationError(f"{path}:{n}: the value of {key} has no closing "
                                         f"{quote}")
            value = value[1:end]
            if quote == '"':
                value = (value.replace("\\n", "\n").replace('\\"', '"')
                         .replace("\\\\", "\\"))
        else:
            value = value.split(" #", 1)[0].rstrip()  # a comment after an unquoted value
        out[key] = value
    return out
