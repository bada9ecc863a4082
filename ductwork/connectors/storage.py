"""File storage: key rules and events shared by every provider, and the local-disk provider."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import mimetypes
import os
import re
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from ductwork.connectors.base import Problem, ResourceSpec, StorageConnector
from ductwork.connectors.checks import CallProblem, Detail, Runtime
from ductwork.connectors.util import env_path, first_env, is_ref, unknown_keys
from ductwork.errors import ConnectorError
from ductwork.util.durations import parse_ms

DEFAULT_ROOT = ".ductwork/files"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_KEY_BYTES = 1024  # S3's limit; applied to every provider so a key works everywhere
MAX_EXPIRES_IN = 7 * 24 * 3600  # S3 SigV4 refuses longer presigned URLs
TMP_PREFIX = ".dw-tmp-"  # in-flight local writes; never listed, never a valid key segment
# A local file's content type, beside it: `<dir>/.dw-meta-<name>` (never listed, never a key).
META_PREFIX = ".dw-meta-"
# What each operation's input may hold; anything else is refused, so that a misspelt
# `fileName` cannot be silently ignored (the upload would get a generated name).
INPUT_KEYS: dict[str, tuple[str, ...]] = {
    "upload": ("buffer", "encoding", "file_name", "mime_type", "content_type", "key"),
    "download": ("file_key",), "delete": ("file_key",), "list": ("prefix", "limit"),
    "signed_url": ("file_key", "expires_in"),
}
_SPELLINGS = {"fileName": "file_name", "filename": "file_name", "name": "file_name",
              "mimeType": "mime_type", "mimetype": "mime_type", "contentType": "content_type",
              "fileKey": "file_key", "key": "file_key", "expiresIn": "expires_in",
              "data": "buffer", "content": "buffer"}

EVENT_KEYS = {"description", "prefix", "max_size", "content_types"}
LOCAL_KEYS = {"provider", "root", "base_url"}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)\s*$", re.IGNORECASE)
_TOKEN = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*"
_CONTENT_TYPE = re.compile(rf"^{_TOKEN}/(\*|{_TOKEN})$")
_DRIVE = re.compile(r"^[A-Za-z]:")
_UNSAFE_NAME_CHARS = re.compile(r"[^\w.\-]+")


# -- shared rules ---------------------------------------------------------------------------------

def parse_size(value: Any) -> int:
    """Bytes from an int or a string like "5MB", "512 KiB", "1.5GB"; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or a string like '5MB'")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError("a size must be positive")
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            unit = m.group(2).upper()
            base = 1024 if "I" in unit else 1000
            letter = unit[:1] if unit[:1] in "KMGT" else ""
            scale = base ** "KMGT".index(letter) * base if letter else 1
            size = int(float(m.group(1)) * scale)
            if size > 0:
                return size
    raise ValueError(f"{value!r} is not a size (use bytes, or a string like '5MB' or '512KiB')")


def normalize_key(raw: Any) -> str:
    """A key that stays inside the storage root, or ValueError saying why not.

    Backslashes become slashes, leading slashes and `.`/empty segments are dropped. `..`
    segments and control characters are refused, also when hidden behind percent-encoding
    (`%2e%2e`, `%252e%252e`, `%00`): a web server in front of the files may decode them.
    The key itself keeps its characters (a literal `%` is legitimate in object keys).
    """
    if not isinstance(raw, str):
        raise ValueError(f"a file key is a string, got {type(raw).__name__}")
    text = raw.replace("\\", "/")
    variants = [text]
    for _ in range(3):
        decoded = unquote(variants[-1]).replace("\\", "/")
        if decoded == variants[-1]:
            break
        variants.append(decoded)
    for v in variants:
        if any(ord(c) < 32 or ord(c) == 127 for c in v):
            raise ValueError("a file key must not contain control characters (NUL, newline, ...)")
        if any(seg == ".." for seg in v.split("/")):
            raise ValueError("a file key must not contain '..' segments")
        if _DRIVE.match(v):
            raise ValueError("a file key must not be a Windows drive path")
    parts = [seg for seg in text.split("/") if seg not in ("", ".")]
    if not parts:
        raise ValueError("a file key must not be empty")
    for reserved in (TMP_PREFIX, META_PREFIX):
        if any(seg.startswith(reserved) for seg in parts):
            raise ValueError(f"a file key segment must not start with '{reserved}'")
    key = "/".join(parts)
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise ValueError(f"a file key must be at most {MAX_KEY_BYTES} bytes")
    return key


def normalize_prefix(raw: Any) -> str:
    """A key prefix: '' or a normalized key ending in '/'."""
    if raw is None or raw == "":
        return ""
    if isinstance(raw, str) and raw.strip("/\\") == "":
        return ""
    return normalize_key(raw) + "/"


def safe_file_name(name: str) -> str:
    """The last path segment of a client-supplied file name, reduced to safe characters."""
    text = unquote(name).replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(c for c in text if ord(c) >= 32 and ord(c) != 127)
    text = _UNSAFE_NAME_CHARS.sub("_", text).lstrip(".")
    return text[:120] or "file"


def content_type_matches(content_type: str, allowed: list[str]) -> bool:
    ctype = content_type.split(";", 1)[0].strip().lower()
    for pattern in allowed:
        p = pattern.strip().lower()
        if p == ctype or (p.endswith("/*") and ctype.startswith(p[:-1])) or p == "*/*":
            return True
    return False


class StorageProblem(Exception):
    """Raised by provider hooks; the connector turns it into a ConnectorError naming the event."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class StorageEvent:
    """One declared storage event: a class of files with a key prefix and upload limits."""

    name: str
    prefix: str = ""
    max_size: int | None = None
    content_types: tuple[str, ...] = ()


# -- validation (ductwork validate) ---------------------------------------------------------------

def validate_events(definition: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    events = definition.get("events")
    if events is None:
        return problems
    if not isinstance(events, Mapping):
        return [(("events",), "events must be a mapping of event name -> {prefix, max_size, ...}")]
    for name, ev in events.items():
        where: tuple[str | int, ...] = ("events", str(name))
        if ev is None:
            continue
        if not isinstance(ev, Mapping):
            problems.append((where, "an event is a mapping like {prefix: 'avatars/'}"))
            continue
        for key in sorted(set(ev) - EVENT_KEYS):
            problems.append(((*where, key), f"unknown key '{key}' (known: "
                             f"{', '.join(sorted(EVENT_KEYS))})"))
        if "prefix" in ev:
            try:
                normalize_prefix(ev["prefix"])
            except ValueError as e:
                problems.append(((*where, "prefix"), str(e)))
        if "max_size" in ev:
            try:
                parse_size(ev["max_size"])
            except ValueError as e:
                problems.append(((*where, "max_size"), str(e)))
        if "content_types" in ev:
            cts = ev["content_types"]
            if not isinstance(cts, list) or not cts:
                problems.append(((*where, "content_types"),
                                 "content_types is a non-empty list like ['image/png', 'image/*']"))
            else:
                for i, ct in enumerate(cts):
                    if not isinstance(ct, str) or not (_CONTENT_TYPE.match(ct) or ct == "*/*"):
                        problems.append(((*where, "content_types", i),
                                         f"{ct!r} is not a content type like 'image/png'"))
    return problems


def validate_local(definition: dict[str, Any], config: dict[str, Any]) -> list[Problem]:
    """Problems in a local storage resource (config of one env + the shared events)."""
    env = env_path(definition, config)
    problems = unknown_keys(definition, config, LOCAL_KEYS, "local")
    root = config.get("root", DEFAULT_ROOT)
    if not isinstance(root, str) or not root:
        problems.append(((*env, "root"), "root is a directory path (relative to the product file)"))
    base_url = config.get("base_url")
    if base_url is not None and not (
        isinstance(base_url, str) and (base_url.startswith(("http://", "https://")) or
                                       is_ref(base_url))
    ):
        problems.append(((*env, "base_url"), "base_url is an http(s) URL that serves the root"))
    return problems + (validate_events(definition) if first_env(definition, config) else [])


# -- the shared connector -------------------------------------------------------------------------

class BaseStorage(StorageConnector):
    """Event rules, input checks and result shapes; a provider implements the `_`-methods."""

    provider = ""

    def __init__(self, spec: ResourceSpec) -> None:
        super().__init__(spec)
        self.rs = spec

    # provider hooks (blocking; called in a worker thread)
    def _put(self, key: str, data: bytes, content_type: str) -> None:
        raise NotImplementedError

    def _get(self, key: str) -> tuple[bytes, str | None]:
        raise NotImplementedError

    def _remove(self, key: str) -> bool:
        raise NotImplementedError

    def _list(self, prefix: str, limit: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _url(self, key: str) -> str:
        raise NotImplementedError

    def _signed(self, key: str, expires_in: int) -> str:
        raise NotImplementedError

    def _fail(self, op: str, event: str, key: str, exc: Exception) -> ConnectorError:
        return self.rs.error(f"{op} of '{key}' failed: {exc}", event=event)

    async def _call(self, op: str, event: str, key: str, fn: Any, *args: Any) -> Any:
        """Run a blocking provider hook in a thread; every failure becomes a ConnectorError."""
        try:
            return await asyncio.to_thread(fn, *args)
        except StorageProblem as e:
            raise self.rs.error(str(e), event=event, status=e.status) from None
        except ConnectorError:
            raise
        except Exception as e:
            raise self._fail(op, event, key, e) from None

    async def ping(self) -> str:
        """List at most one object at the root (reads nothing, writes nothing)."""
        await self._call("list", "health", "/", self._list, "", 1)
        return "list 1 object"

    # event + input handling
    def event_rules(self, event: str) -> StorageEvent:
        ev = self.rs.event(event)
        try:
            prefix = normalize_prefix(ev.get("prefix"))
            max_size = parse_size(ev["max_size"]) if ev.get("max_size") is not None else None
        except ValueError as e:
            raise self.rs.error(f"bad event definition: {e}", event=event) from None
        cts = ev.get("content_types") or ()
        return StorageEvent(event, prefix, max_size, tuple(str(c) for c in cts))

    def _input(self, event: str, input: Any, op: str = "") -> Mapping[str, Any]:
        if input is None:
            return {}
        if not isinstance(input, Mapping):
            raise self.rs.error(f"input must be a mapping, got {type(input).__name__}",
                                event=event)
        known = INPUT_KEYS.get(op)
        if known:
            unknown = [k for k in input if k not in known]
            if unknown:
                k = str(unknown[0])
                near = _SPELLINGS.get(k)
                hint = f"; did you mean {near}?" if near in known else ""
                raise self.rs.error(
                    f"{op}: input.{k} is not an input of {op} (known: {', '.join(known)})"
                    + hint, event=event, retryable=False)
        return input

    def scoped_key(self, ev: StorageEvent, raw: Any, field: str = "file_key") -> str:
        """Normalize a key and put it under the event's prefix (unless it already is)."""
        if raw is None or raw == "":
            raise self.rs.error(f"input.{field} is required", event=ev.name)
        try:
            key = normalize_key(raw)
        except ValueError as e:
            raise self.rs.error(f"input.{field} {raw!r} is refused: {e}", event=ev.name) from None
        if ev.prefix and not key.startswith(ev.prefix):
            key = ev.prefix + key
        return key

    def _buffer(self, event: str, inp: Mapping[str, Any]) -> bytes:
        buf = inp.get("buffer")
        encoding = str(inp.get("encoding") or "utf-8").lower()
        if isinstance(buf, bytes | bytearray | memoryview):
            return bytes(buf)
        if isinstance(buf, str):
            if encoding == "base64":
                try:
                    return base64.b64decode(buf, validate=True)
                except (binascii.Error, ValueError):
                    raise self.rs.error("input.buffer is not valid base64", event=event) from None
            try:
                return buf.encode(encoding)
            except (LookupError, UnicodeEncodeError) as e:
                raise self.rs.error(f"input.buffer cannot be encoded as {encoding}: {e}",
                                    event=event) from None
        raise self.rs.error(
            "input.buffer is required: bytes, or a string (input.encoding 'utf-8' by default, "
            f"or 'base64'), got {type(buf).__name__}", event=event,
        )

    def _new_key(self, ev: StorageEvent, inp: Mapping[str, Any], content_type: str) -> str:
        if inp.get("key") not in (None, ""):
            return self.scoped_key(ev, inp["key"], "key")
        name = inp.get("file_name")
        if name is not None and not isinstance(name, str):
            raise self.rs.error("input.file_name must be a string", event=ev.name)
        stem = safe_file_name(name) if name else "file"
        if "." not in stem:
            stem += mimetypes.guess_extension(content_type.split(";")[0].strip()) or ""
        return self.scoped_key(ev, f"{uuid.uuid4().hex}-{stem}")

    def _expires(self, event: str, inp: Mapping[str, Any]) -> int:
        # A deliberate exception to "bare numbers are milliseconds": `expires_in` mirrors S3's
        # ExpiresIn, in seconds; a string with a unit ("15m", "1h") is a duration as anywhere.
        value = inp.get("expires_in", 3600)
        if isinstance(value, str) and not value.strip().isdigit():
            ms = parse_ms(value)
            value = ms / 1000 if ms is not None else value
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
            0 < value <= MAX_EXPIRES_IN
        ):
            raise self.rs.error(
                f"input.expires_in is a number of SECONDS between 1 and {MAX_EXPIRES_IN} "
                "(or a duration with a unit, e.g. \"15m\", \"1h\")",
                event=event,
            )
        return int(value)

    # operations
    async def upload(self, event: str, input: Mapping[str, Any]) -> dict[str, Any]:
        ev = self.event_rules(event)
        inp = self._input(event, input, "upload")
        data = self._buffer(event, inp)
        declared = inp.get("mime_type") or inp.get("content_type")
        if declared is not None and not (isinstance(declared, str) and
                                         _CONTENT_TYPE.match(declared.split(";")[0].strip())):
            raise self.rs.error(f"input.mime_type {declared!r} is not a content type",
                                event=event)
        name = inp.get("file_name") or inp.get("key")
        guessed = mimetypes.guess_type(name)[0] if isinstance(name, str) else None
        content_type = str(declared or guessed or DEFAULT_CONTENT_TYPE)
        if ev.max_size is not None and len(data) > ev.max_size:
            raise self.rs.error(f"file is {len(data)} bytes; this event accepts at most "
                                f"{ev.max_size}", event=event)
        if ev.content_types and not content_type_matches(content_type, list(ev.content_types)):
            raise self.rs.error(f"content type {content_type!r} is not accepted (allowed: "
                                f"{', '.join(ev.content_types)})", event=event)
        key = self._new_key(ev, inp, content_type)
        await self._call("upload", event, key, self._put, key, data, content_type)
        url = await self._call("upload", event, key, self._url, key)
        return {"file_key": key, "url": url, "size": len(data), "content_type": content_type}

    async def download(self, event: str, input: Mapping[str, Any]) -> dict[str, Any]:
        ev = self.event_rules(event)
        key = self.scoped_key(ev, self._input(event, input, "download").get("file_key"))
        data, ctype = await self._call("download", event, key, self._get, key)
        content_type = ctype or mimetypes.guess_type(key)[0] or DEFAULT_CONTENT_TYPE
        return {"file_key": key, "content": data, "content_type": content_type,
                "size": len(data)}

    async def delete(self, event: str, input: Mapping[str, Any]) -> bool:
        ev = self.event_rules(event)
        key = self.scoped_key(ev, self._input(event, input, "delete").get("file_key"))
        return bool(await self._call("delete", event, key, self._remove, key))

    async def list(self, event: str, input: Mapping[str, Any] | None = None) -> list[Any]:
        ev = self.event_rules(event)
        inp = self._input(event, input, "list")
        prefix = ev.prefix
        raw = inp.get("prefix")
        if raw not in (None, ""):
            try:
                sub = normalize_key(raw) + ("/" if str(raw).endswith(("/", "\\")) else "")
            except ValueError as e:
                raise self.rs.error(f"input.prefix {raw!r} is refused: {e}", event=event) from None
            prefix = sub if ev.prefix and sub.startswith(ev.prefix) else ev.prefix + sub
        limit = inp.get("limit", 1000)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
            raise self.rs.error("input.limit is a positive integer", event=event)
        items: list[dict[str, Any]] = await self._call(
            "list", event, prefix or "/", self._list, prefix, limit)
        for item in items:
            item["url"] = self._url(item["file_key"])
        return items

    async def signed_url(self, event: str, input: Mapping[str, Any]) -> str:
        ev = self.event_rules(event)
        inp = self._input(event, input, "signed_url")
        key = self.scoped_key(ev, inp.get("file_key"))
        expires = self._expires(event, inp)
        return str(await self._call("signed_url", event, key, self._signed, key, expires))


def check_call(method: str, definition: Mapping[str, Any],
               args: Mapping[str, Any]) -> list[CallProblem]:
    """For `ductwork validate`: what an upload, download or delete surely lacks, and a
    content type (written, or read from a written file name) the event does not accept."""
    problems = _check_inputs(method, definition, args)
    value = args.get("input")
    if problems or not isinstance(value, Mapping):
        return problems
    # Then an input the operation does not know (a misspelt `fileName` would be ignored).
    known = INPUT_KEYS.get(method, ())
    for k in value:
        if known and isinstance(k, str) and k not in known:
            near = _SPELLINGS.get(k)
            return [(("input", k), Detail(
                f"storage.{method} has no input '{k}'",
                f"write {near}:" if near in known else f"the inputs are {', '.join(known)}",
                key=True))]
    return []


def _check_inputs(method: str, definition: Mapping[str, Any],
                  args: Mapping[str, Any]) -> list[CallProblem]:
    value = args.get("input")
    if not isinstance(value, Mapping):
        return []
    if method in ("download", "delete") and "file_key" not in value:
        return [(("input",), Detail(f"storage.{method} needs input.file_key",
                                    "the file_key an upload returned, e.g. file_key: "
                                    "\"${steps.<upload>.file_key}\"", key=True))]
    if method != "upload":
        return []
    out: list[CallProblem] = []
    if "buffer" not in value:
        near = next((k for k in ("content", "data", "body", "file", "bytes") if k in value), None)
        if near is not None:
            out.append((("input", near), Detail(
                "storage.upload needs input.buffer (the content)",
                f"the content goes in buffer:, not {near}:", key=True)))
        else:
            out.append((("input",), Detail("storage.upload needs input.buffer (the content)",
                                           "e.g. buffer: \"${json(steps.report)}\"", key=True)))
    events = definition.get("events")
    ev = events.get(args.get("event")) if isinstance(events, Mapping) else None
    allowed = ev.get("content_types") if isinstance(ev, Mapping) else None
    typed = _written_type(value)
    if typed is None or not isinstance(allowed, list) or not allowed:
        return out
    ctype, field, how = typed
    if not _CONTENT_TYPE.match(ctype.split(";")[0].strip()):
        return out  # refused as "not a content type" by the upload itself; reported below
    if not content_type_matches(ctype, [str(a) for a in allowed]):
        at = ("input", field) if field else ("input",)
        out.append((at, Detail(
            f"event '{args.get('event')}' accepts {', '.join(map(str, allowed))}, "
            f"not '{ctype}'", how, key=not field)))
    return out


def _written_type(value: Mapping[str, Any]) -> tuple[str, str | None, str] | None:
    """(content type, the input field it comes from, how to change it) when the written input
    decides it; None when only the run can tell."""
    for field in ("mime_type", "content_type"):
        declared = value.get(field)
        if isinstance(declared, Runtime):
            return None
        if isinstance(declared, str) and declared:
            return declared, field, "upload a file of an accepted type, or accept this one " \
                                    "in the event's content_types"
    name = value.get("file_name") or value.get("key")
    if isinstance(name, Runtime) or (name is not None and not isinstance(name, str)):
        return None
    if isinstance(name, str):
        guessed = mimetypes.guess_type(name)[0]
        field = "file_name" if value.get("file_name") else "key"
        if guessed:
            return guessed, field, f"the type is guessed from the name '{name}': give " \
                                   "mime_type, or a name with an accepted extension"
    return DEFAULT_CONTENT_TYPE, None, "with no mime_type and no file name extension the " \
        f"type is {DEFAULT_CONTENT_TYPE}: give mime_type"


# -- local filesystem -----------------------------------------------------------------------------

class LocalStorage(BaseStorage):
    """Files under a root directory; writes are atomic (temp file + rename in the same directory).

    `url` is `base_url/<key>` when the env config gives a `base_url` (a web server serving the
    root), else a `file://` URI. There is no signing authority on a local disk: `signed_url`
    returns that same URL and ignores `expires_in` (validated all the same).
    """

    provider = "local"

    def __init__(self, spec: ResourceSpec) -> None:
        super().__init__(spec)
        root = Path(str(spec.config.get("root") or DEFAULT_ROOT)).expanduser()
        if not root.is_absolute():
            root = Path(spec.base_dir) / root
        self.root = Path(os.path.abspath(root))
        base_url = spec.config.get("base_url")
        self.base_url = str(base_url).rstrip("/") if base_url else None

    def path_for(self, key: str) -> Path:
        """The file for a normalized key; refuses one that a symlink leads out of the root."""
        path = self.root.joinpath(*key.split("/"))
        real_root = self.root.resolve()
        if not path.resolve().is_relative_to(real_root):
            raise StorageProblem(f"file key '{key}' leads outside the storage root")
        return path

    def _put(self, key: str, data: bytes, content_type: str) -> None:
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # The content type first: a crash in between leaves a type for a missing or an older
        # file, which a later upload of the same key overwrites, never a file of the wrong type.
        _write_atomic(_meta_path(path), json.dumps({"content_type": content_type}).encode())
        _write_atomic(path, data)

    def _get(self, key: str) -> tuple[bytes, str | None]:
        path = self.path_for(key)
        if not path.is_file():
            raise StorageProblem(f"file '{key}' not found", status=404)
        return path.read_bytes(), _stored_type(path)

    def _remove(self, key: str) -> bool:
        path = self.path_for(key)
        if not path.is_file():
            return False
        path.unlink()
        _meta_path(path).unlink(missing_ok=True)
        # Tidy directories the upload created, never the root itself.
        parent = path.parent
        while parent != self.root and parent.is_relative_to(self.root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
        return True

    def _list(self, prefix: str, limit: int) -> list[dict[str, Any]]:
        base = self.root.joinpath(*prefix.split("/")[:-1]) if "/" in prefix else self.root
        if not base.is_dir() or not base.resolve().is_relative_to(self.root.resolve()):
            return []
        found: list[dict[str, Any]] = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for fn in filenames:
                if fn.startswith((TMP_PREFIX, META_PREFIX)):
                    continue
                full = Path(dirpath) / fn
                key = full.relative_to(self.root).as_posix()
                if not key.startswith(prefix) or not full.resolve().is_relative_to(
                    self.root.resolve()
                ):
                    continue
                st = full.stat()
                found.append({
                    "file_key": key, "size": st.st_size,
                    "content_type": _stored_type(full) or mimetypes.guess_type(key)[0]
                    or DEFAULT_CONTENT_TYPE,
                    "last_modified": datetime.fromtimestamp(st.st_mtime, UTC),
                })
        found.sort(key=lambda item: item["file_key"])
        return found[:limit]

    def _url(self, key: str) -> str:
        if self.base_url:
            return f"{self.base_url}/{quote(key)}"
        return self.root.joinpath(*key.split("/")).as_uri()

    def _signed(self, key: str, expires_in: int) -> str:
        if not self.path_for(key).is_file():
            raise StorageProblem(f"file '{key}' not found", status=404)
        return self._url(key)

    def _fail(self, op: str, event: str, key: str, exc: Exception) -> ConnectorError:
        if isinstance(exc, OSError):
            reason = exc.strerror or type(exc).__name__
            return self.rs.error(f"{op} of '{key}' failed: {reason}", event=event)
        return super()._fail(op, event, key, exc)


def _meta_path(path: Path) -> Path:
    return path.with_name(META_PREFIX + path.name)


def _stored_type(path: Path) -> str | None:
    """The content type an upload stored beside the file (None for a file put there by hand)."""
    try:
        meta = json.loads(_meta_path(path).read_bytes())
    except (OSError, ValueError):
        return None
    ctype = meta.get("content_type") if isinstance(meta, dict) else None
    return ctype if isinstance(ctype, str) and ctype else None


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; stored files are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create(spec: ResourceSpec) -> LocalStorage:
    return LocalStorage(spec)
