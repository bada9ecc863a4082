"""Storage connectors: local files and S3 against a real moto_server, one behavioural suite."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import httpx
import pytest

from ductwork.connectors.base import (
    ResourceSpec,
    SecretSet,
    StorageConnector,
    build_connector,
    resolve_refs,
    validate_resource,
)
from ductwork.connectors.storage import normalize_key, parse_size
from ductwork.errors import ConnectorError
from tests.support.moto import MotoServer
from tests.support.moto import moto_open_server as moto_open_server  # session fixture
from tests.support.moto import moto_server as moto_server  # session fixture

EVENTS: dict[str, Any] = {
    "avatar": {"prefix": "avatars/", "max_size": "1KB", "content_types": ["image/*"]},
    "doc": {"prefix": "docs"},
    "any": {},
}


def make(config: dict[str, Any], *, base_dir: Path, environ: dict[str, str] | None = None,
         events: dict[str, Any] | None = None, env: str = "dev") -> StorageConnector:
    secrets = SecretSet()
    resolved = resolve_refs(config, environ=environ or {}, collect=secrets)
    definition = {"envs": {env: config}, "events": EVENTS if events is None else events}
    spec = ResourceSpec(kind="storage", name="uploads", env=env, product="shop",
                        config=resolved, definition=definition, base_dir=str(base_dir),
                        secrets=secrets)
    conn = build_connector(spec)
    assert isinstance(conn, StorageConnector)
    return conn


def s3_config(moto: MotoServer, bucket: str, **extra: Any) -> tuple[dict[str, Any],
                                                                     dict[str, str]]:
    config = {"provider": "s3", "bucket": bucket, "region": moto.region,
              "endpoint_url": moto.endpoint_url,
              "access_key_id": "${env.AWS_ACCESS_KEY_ID}",
              "secret_access_key": "${env.AWS_SECRET_ACCESS_KEY}", **extra}
    environ = {"AWS_ACCESS_KEY_ID": moto.access_key_id,
               "AWS_SECRET_ACCESS_KEY": moto.secret_access_key}
    return config, environ


class Backend:
    """What the shared suite needs to know about where the bytes really went."""

    def __init__(self, conn: StorageConnector, exists: Callable[[str], bool],
                 outside: Callable[[], list[str]]) -> None:
        self.conn, self.exists, self.outside = conn, exists, outside


@pytest.fixture(params=["local", "s3"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "local":
        root = tmp_path / "spec" / "files"
        (tmp_path / "spec").mkdir()
        conn = make({"provider": "local", "root": "files"}, base_dir=tmp_path / "spec")

        def exists(key: str) -> bool:
            return (root / key).is_file()

        def outside() -> list[str]:
            # Everything written anywhere under tmp_path but outside the root.
            return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
                          if p.is_file() and not p.is_relative_to(root))

        yield Backend(conn, exists, outside)
    else:
        moto: MotoServer = request.getfixturevalue("moto_server")
        bucket = moto.create_bucket(f"b-{uuid.uuid4().hex[:12]}")
        config, environ = s3_config(moto, bucket, prefix="tenant-1/")
        conn = make(config, base_dir=tmp_path, environ=environ)
        raw = moto.admin

        def exists_s3(key: str) -> bool:
            return raw.list_objects_v2(Bucket=bucket, Prefix="tenant-1/" + key)["KeyCount"] > 0

        def outside_s3() -> list[str]:
            keys = [o["Key"] for o in raw.list_objects_v2(Bucket=bucket).get("Contents", [])]
            return sorted(k for k in keys if not k.startswith("tenant-1/"))

        yield Backend(conn, exists_s3, outside_s3)
    await conn.aclose()


# -- shared behaviour -----------------------------------------------------------------------------

async def test_upload_download_list_delete_roundtrip(backend: Backend) -> None:
    conn = backend.conn
    up = await conn.upload("doc", {"buffer": b"hello world", "file_name": "notes.txt"})
    assert set(up) == {"file_key", "url", "size", "content_type"}
    assert up["file_key"].startswith("docs/") and up["file_key"].endswith("-notes.txt")
    assert up["size"] == 11 and up["content_type"] == "text/plain"
    assert backend.exists(up["file_key"])

    down = await conn.download("doc", {"file_key": up["file_key"]})
    assert down["content"] == b"hello world"
    assert down["content_type"] == "text/plain" and down["size"] == 11

    listed = await conn.list("doc")
    assert [i["file_key"] for i in listed] == [up["file_key"]]
    assert listed[0]["size"] == 11 and listed[0]["url"] == up["url"]

    assert await conn.delete("doc", {"file_key": up["file_key"]}) is True
    assert not backend.exists(up["file_key"])
    assert await conn.delete("doc", {"file_key": up["file_key"]}) is False
    assert await conn.list("doc") == []


async def test_keys_are_relative_to_the_event_prefix(backend: Backend) -> None:
    conn = backend.conn
    a = await conn.upload("avatar", {"buffer": b"\x89PNG", "key": "u1.png"})
    assert a["file_key"] == "avatars/u1.png" and a["content_type"] == "image/png"
    b = await conn.upload("avatar", {"buffer": b"\x89PNG2", "key": "avatars/u1.png"})
    assert b["file_key"] == "avatars/u1.png"  # already under the prefix: not doubled
    assert (await conn.download("avatar", {"file_key": "u1.png"}))["content"] == b"\x89PNG2"
    await conn.upload("any", {"buffer": b"x", "key": "avatars/u2.png"})
    await conn.upload("any", {"buffer": b"x", "key": "other/u3.png"})
    assert [i["file_key"] for i in await conn.list("avatar")] == [
        "avatars/u1.png", "avatars/u2.png"]
    assert [i["file_key"] for i in await conn.list("any", {"prefix": "other/"})] == [
        "other/u3.png"]
    assert [i["file_key"] for i in await conn.list("any", {"limit": 2})] == [
        "avatars/u1.png", "avatars/u2.png"]


async def test_overwrite_replaces_content(backend: Backend) -> None:
    await backend.conn.upload("any", {"buffer": b"one", "key": "k.bin"})
    await backend.conn.upload("any", {"buffer": b"two!", "key": "k.bin"})
    got = await backend.conn.download("any", {"file_key": "k.bin"})
    assert got["content"] == b"two!" and got["size"] == 4


TRAVERSAL = [
    "../escape.txt", "../../etc/passwd", "a/../../escape.txt", "..\\..\\escape.txt",
    "a\\..\\..\\escape.txt", "%2e%2e/escape.txt", "%2E%2E%2Fescape.txt",
    "%252e%252e/escape.txt", "a/%2e%2e/%2e%2e/escape.txt", "..", "x\x00.txt", "x%00.txt",
    "C:\\Windows\\escape.txt", "line\nbreak.txt",
]


@pytest.mark.parametrize("key", TRAVERSAL)
async def test_traversal_keys_are_refused(backend: Backend, key: str) -> None:
    with pytest.raises(ConnectorError) as info:
        await backend.conn.upload("any", {"buffer": b"pwned", "key": key})
    assert "storage/uploads/any (env dev)" in str(info.value)
    for op in (backend.conn.download, backend.conn.delete):
        with pytest.raises(ConnectorError):
            await op("any", {"file_key": key})
    assert backend.outside() == []


@pytest.mark.parametrize("key,expected", [
    ("/etc/passwd", "etc/passwd"), ("//a///b/./c.txt", "a/b/c.txt"),
    ("a\\b\\c.txt", "a/b/c.txt"), ("./x.txt", "x.txt"), ("100%.txt", "100%.txt"),
])
async def test_absolute_and_odd_keys_stay_inside_the_root(
    backend: Backend, key: str, expected: str
) -> None:
    up = await backend.conn.upload("any", {"buffer": b"ok", "key": key})
    assert up["file_key"] == expected and backend.exists(expected)
    assert backend.outside() == []


async def test_client_file_names_cannot_pick_the_directory(backend: Backend) -> None:
    up = await backend.conn.upload("doc", {"buffer": b"#!/bin/sh", "file_name": "../../evil.sh"})
    assert up["file_key"].startswith("docs/") and up["file_key"].endswith("-evil.sh")
    assert up["file_key"].count("/") == 1
    up = await backend.conn.upload("doc", {"buffer": b"x", "file_name": "C:\\tmp\\%2e%2e\\a b.txt"})
    assert up["file_key"].endswith("-a_b.txt") and up["file_key"].count("/") == 1
    assert backend.outside() == []


async def test_event_limits(backend: Backend) -> None:
    conn = backend.conn
    with pytest.raises(ConnectorError, match="at most 1000"):
        await conn.upload("avatar", {"buffer": b"x" * 1001, "file_name": "a.png"})
    with pytest.raises(ConnectorError, match="'text/plain' is not accepted"):
        await conn.upload("avatar", {"buffer": b"x", "file_name": "a.txt"})
    ok = await conn.upload("avatar", {"buffer": b"x" * 1000, "file_name": "photo",
                                      "mime_type": "image/jpeg"})
    assert ok["content_type"] == "image/jpeg" and ok["file_key"].endswith((".jpg", ".jpeg"))
    assert (await conn.download("avatar", {"file_key": ok["file_key"]}))[
        "content_type"] == "image/jpeg"
    assert [i["file_key"] for i in await conn.list("avatar")] == [ok["file_key"]]


async def test_file_name_and_mime_type_are_kept(backend: Backend) -> None:
    conn = backend.conn
    # A type the name does not tell: stored with the file, returned by download.
    up = await conn.upload("any", {"buffer": b"%PDF-1.7", "file_name": "scan.bin",
                                   "mime_type": "application/pdf"})
    assert up["content_type"] == "application/pdf" and up["file_key"].endswith("-scan.bin")
    down = await conn.download("any", {"file_key": up["file_key"]})
    assert (down["content"], down["content_type"]) == (b"%PDF-1.7", "application/pdf")
    assert [i["file_key"] for i in await conn.list("any")] == [up["file_key"]]
    assert await conn.delete("any", {"file_key": up["file_key"]}) is True
    assert await conn.list("any") == [] and backend.outside() == []


async def test_misspelt_input_keys_are_refused_not_ignored(backend: Backend) -> None:
    conn = backend.conn
    with pytest.raises(ConnectorError, match=r"input\.fileName is not an input of upload "
                                             r"\(known: buffer, .*\); did you mean file_name\?"):
        await conn.upload("any", {"buffer": b"x", "fileName": "a.pdf"})
    with pytest.raises(ConnectorError, match=r"input\.mimeType .*did you mean mime_type\?"):
        await conn.upload("any", {"buffer": b"x", "file_name": "a", "mimeType": "text/csv"})
    with pytest.raises(ConnectorError, match=r"input\.key is not an input of download .*"
                                             r"did you mean file_key\?") as info:
        await conn.download("any", {"key": "a"})
    assert info.value.retryable is False
    assert await conn.list("any") == []


async def test_buffer_forms(backend: Backend) -> None:
    conn = backend.conn
    b64 = await conn.upload("any", {"buffer": base64.b64encode(b"\x00\xffbin").decode(),
                                    "encoding": "base64", "key": "b.bin"})
    assert b64["size"] == 5 and b64["content_type"] == "application/octet-stream"
    assert (await conn.download("any", {"file_key": "b.bin"}))["content"] == b"\x00\xffbin"
    text = await conn.upload("any", {"buffer": "héllo", "file_name": "h.txt"})
    assert text["size"] == len("héllo".encode())
    with pytest.raises(ConnectorError, match="not valid base64"):
        await conn.upload("any", {"buffer": "***", "encoding": "base64", "key": "x"})
    with pytest.raises(ConnectorError, match=r"input.buffer is required"):
        await conn.upload("any", {"file_name": "x.txt"})
    with pytest.raises(ConnectorError, match="input must be a mapping"):
        not_a_mapping: Any = ["not", "a", "mapping"]
        await conn.upload("any", not_a_mapping)


async def test_unknown_event_and_missing_file(backend: Backend) -> None:
    with pytest.raises(ConnectorError) as info:
        await backend.conn.upload("avatarz", {"buffer": b"x"})
    assert "unknown event 'avatarz'" in str(info.value) and "any, avatar, doc" in str(info.value)
    with pytest.raises(ConnectorError) as info:
        await backend.conn.download("doc", {"file_key": "nope.txt"})
    assert info.value.status == 404 and "'docs/nope.txt' not found" in str(info.value)
    assert info.value.resource == "uploads" and info.value.event == "doc"
    with pytest.raises(ConnectorError, match=r"input\.file_key is required"):
        await backend.conn.download("doc", {})


async def test_signed_url_validates_expiry(backend: Backend) -> None:
    up = await backend.conn.upload("any", {"buffer": b"x", "key": "s.txt"})
    for bad in (0, -1, 10**9, "soon", True, "8d", "3600"):
        with pytest.raises(ConnectorError, match="expires_in"):
            await backend.conn.signed_url("any", {"file_key": up["file_key"],
                                                  "expires_in": bad})


# -- local only -----------------------------------------------------------------------------------

async def test_local_root_is_relative_to_the_product_file(tmp_path: Path) -> None:
    conn = make({"provider": "local"}, base_dir=tmp_path)
    up = await conn.upload("doc", {"buffer": b"x", "key": "a/b.txt"})
    path = tmp_path / ".ductwork" / "files" / "docs" / "a" / "b.txt"
    assert path.read_bytes() == b"x"
    assert up["url"] == path.as_uri()
    assert Path(url2pathname(urlparse(await conn.signed_url(
        "doc", {"file_key": up["file_key"]})).path)) == path
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert await conn.delete("doc", {"file_key": "a/b.txt"})
    assert not (tmp_path / ".ductwork" / "files" / "docs").exists()  # emptied dirs tidied
    assert (tmp_path / ".ductwork" / "files").is_dir()


async def test_local_base_url(tmp_path: Path) -> None:
    conn = make({"root": str(tmp_path / "r"), "base_url": "https://cdn.example/files/"},
                base_dir=Path("/nonexistent"))
    up = await conn.upload("doc", {"buffer": b"x", "key": "a b.txt"})
    assert up["url"] == "https://cdn.example/files/docs/a%20b.txt"
    assert (tmp_path / "r" / "docs" / "a b.txt").exists()
    with pytest.raises(ConnectorError, match="not found"):
        await conn.signed_url("doc", {"file_key": "missing.txt"})


async def test_local_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = make({"root": str(tmp_path)}, base_dir=tmp_path)
    await conn.upload("any", {"buffer": b"old", "key": "f.txt"})

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(ConnectorError, match="No space left on device"):
        await conn.upload("any", {"buffer": b"new", "key": "f.txt"})
    monkeypatch.undo()
    assert (tmp_path / "f.txt").read_bytes() == b"old"
    # No temp file left; the content type beside the file is the first upload's.
    assert sorted(p.name for p in tmp_path.iterdir()) == [".dw-meta-f.txt", "f.txt"]
    assert (await conn.download("any", {"file_key": "f.txt"}))["content_type"] == "text/plain"


async def test_local_content_type_lives_beside_the_file(tmp_path: Path) -> None:
    conn = make({"root": "files"}, base_dir=tmp_path)
    up = await conn.upload("doc", {"buffer": b"a,b", "file_name": "report",
                                   "mime_type": "text/csv"})
    path = tmp_path / "files" / up["file_key"]
    assert json.loads((path.parent / f".dw-meta-{path.name}").read_text()) == {
        "content_type": "text/csv"}
    [item] = await conn.list("doc")
    assert item["content_type"] == "text/csv" and item["file_key"] == up["file_key"]
    with pytest.raises(ConnectorError, match=r"must not start with '\.dw-meta-'"):
        await conn.download("doc", {"file_key": f"docs/.dw-meta-{path.name}"})
    # A file put there by hand has no stored type: it is read from its name.
    (tmp_path / "files" / "docs" / "hand.json").write_text("{}")
    hand = await conn.download("doc", {"file_key": "hand.json"})
    assert hand["content_type"] == "application/json"
    assert await conn.delete("doc", {"file_key": up["file_key"]}) is True
    assert sorted(p.name for p in (tmp_path / "files" / "docs").iterdir()) == ["hand.json"]


async def test_local_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("s")
    (root / "link").symlink_to(outside)
    conn = make({"root": str(root)}, base_dir=tmp_path)
    with pytest.raises(ConnectorError, match="outside the storage root"):
        await conn.download("any", {"file_key": "link/secret.txt"})
    with pytest.raises(ConnectorError, match="outside the storage root"):
        await conn.upload("any", {"buffer": b"x", "key": "link/new.txt"})
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert await conn.list("any") == []


async def test_local_key_colliding_with_a_directory(tmp_path: Path) -> None:
    conn = make({"root": str(tmp_path)}, base_dir=tmp_path)
    await conn.upload("any", {"buffer": b"x", "key": "d/f.txt"})
    with pytest.raises(ConnectorError) as info:
        await conn.upload("any", {"buffer": b"x", "key": "d"})
    assert "upload of 'd' failed" in str(info.value)
    assert "Traceback" not in str(info.value)


# -- S3 only --------------------------------------------------------------------------------------

async def test_s3_object_really_lands_in_the_bucket(moto_server: MotoServer,
                                                    tmp_path: Path) -> None:
    bucket = moto_server.create_bucket(f"b-{uuid.uuid4().hex[:12]}")
    config, environ = s3_config(moto_server, bucket)
    conn = make(config, base_dir=tmp_path, environ=environ)
    try:
        up = await conn.upload("avatar", {"buffer": b"\x89PNG...", "key": "u1.png"})
        head = moto_server.admin.head_object(Bucket=bucket, Key="avatars/u1.png")
        assert head["ContentType"] == "image/png" and head["ContentLength"] == 7
        assert up["url"] == f"{moto_server.endpoint_url}/{bucket}/avatars/u1.png"
        assert "Signature" not in up["url"] and moto_server.access_key_id not in up["url"]
    finally:
        await conn.aclose()


async def test_s3_signed_url_serves_the_object(moto_open_server: MotoServer,
                                               tmp_path: Path) -> None:
    # moto cannot check presigned URLs while IAM auth is on (it answers 500): open server.
    bucket = moto_open_server.create_bucket(f"b-{uuid.uuid4().hex[:12]}")
    config, environ = s3_config(moto_open_server, bucket, prefix="t/")
    conn = make(config, base_dir=tmp_path, environ=environ)
    try:
        await conn.upload("avatar", {"buffer": b"\x89PNG...", "key": "u1.png"})
        signed = await conn.signed_url("avatar", {"file_key": "u1.png", "expires_in": 60})
        assert signed.startswith(f"{moto_open_server.endpoint_url}/{bucket}/t/avatars/u1.png?")
        assert "X-Amz-Signature=" in signed and "X-Amz-Expires=60" in signed
        later = await conn.signed_url("avatar", {"file_key": "u1.png", "expires_in": "15m"})
        assert "X-Amz-Expires=900" in later
        async with httpx.AsyncClient() as http:
            got = await http.get(signed)
        assert got.status_code == 200 and got.content == b"\x89PNG..."
        assert got.headers["content-type"] == "image/png"
    finally:
        await conn.aclose()


async def test_s3_public_base_url(moto_server: MotoServer, tmp_path: Path) -> None:
    bucket = moto_server.create_bucket(f"b-{uuid.uuid4().hex[:12]}")
    config, environ = s3_config(moto_server, bucket, public_base_url="https://cdn.example/")
    conn = make(config, base_dir=tmp_path, environ=environ)
    up = await conn.upload("doc", {"buffer": b"x", "key": "r é.txt"})
    assert up["url"] == "https://cdn.example/docs/r%20%C3%A9.txt"
    await conn.aclose()


async def test_s3_missing_bucket_names_resource_event_env(moto_server: MotoServer,
                                                          tmp_path: Path) -> None:
    config, environ = s3_config(moto_server, "no-such-bucket-here")
    conn = make(config, base_dir=tmp_path, environ=environ, env="prd")
    try:
        for call in (conn.upload("doc", {"buffer": b"x", "key": "a"}),
                     conn.download("doc", {"file_key": "a"}),
                     conn.delete("doc", {"file_key": "a"}),
                     conn.list("doc")):
            with pytest.raises(ConnectorError) as info:
                await call
            msg = str(info.value)
            assert msg.startswith("storage/uploads/doc (env prd): ")
            assert "bucket 'no-such-bucket-here'" in msg and "does not exist" in msg
    finally:
        await conn.aclose()


async def test_s3_bad_credentials_never_leak(moto_server: MotoServer, tmp_path: Path) -> None:
    bucket = moto_server.create_bucket(f"b-{uuid.uuid4().hex[:12]}")
    config, _ = s3_config(moto_server, bucket)
    for key_id, secret in ((moto_server.access_key_id, "wrong-secret-value-123"),
                           ("AKIAUNKNOWNKEY000000", "another-wrong-secret-456")):
        env = {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret}
        conn = make(config, base_dir=tmp_path, environ=env)
        try:
            with pytest.raises(ConnectorError) as info:
                await conn.upload("doc", {"buffer": b"x", "key": "a.txt"})
        finally:
            await conn.aclose()
        msg = str(info.value)
        assert "rejected the credentials" in msg and "storage/uploads/doc (env dev)" in msg
        assert secret not in msg and key_id not in msg
        assert info.value.status == 403


async def test_s3_unreachable_endpoint(tmp_path: Path) -> None:
    from tests.support.ports import free_port

    port = free_port()
    config = {"provider": "s3", "bucket": "bkt", "endpoint_url": f"http://127.0.0.1:{port}",
              "access_key_id": "${env.K}", "secret_access_key": "${env.S}", "max_attempts": 1,
              "timeout": "2s"}
    conn = make(config, base_dir=tmp_path, environ={"K": "AKIAXXXXXXXX", "S": "topsecret-1"})
    try:
        with pytest.raises(ConnectorError) as info:
            await conn.download("doc", {"file_key": "a"})
    finally:
        await conn.aclose()
    msg = str(info.value)
    assert "cannot reach S3" in msg and f"127.0.0.1:{port}" in msg
    assert "topsecret-1" not in msg and info.value.retryable


def test_s3_config_errors_at_build(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match="needs `bucket`"):
        make({"provider": "s3"}, base_dir=tmp_path)
    with pytest.raises(ConnectorError, match="both access_key_id and secret_access_key"):
        make({"provider": "s3", "bucket": "bkt", "access_key_id": "x"}, base_dir=tmp_path)


# -- pure helpers and validators ------------------------------------------------------------------

def test_normalize_key_and_sizes() -> None:
    assert normalize_key("a//b/./c") == "a/b/c"
    with pytest.raises(ValueError):
        normalize_key(".dw-tmp-123")
    with pytest.raises(ValueError):
        normalize_key("x" * 1025)
    with pytest.raises(ValueError):
        normalize_key(5)
    assert parse_size(10) == 10 and parse_size("5MB") == 5_000_000
    assert parse_size("1KiB") == 1024 and parse_size("1.5 GB") == 1_500_000_000
    for bad in ("lots", 0, -5, True, "0KB"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_validators_point_at_the_problem() -> None:
    definition: dict[str, Any] = {
        "envs": {
            "dev": {"provider": "local", "root": ".ductwork/files", "bucket": "x"},
            "prd": {"provider": "s3", "region": "eu-west-1", "access_key_id": "${env.K}",
                    "secret_access_key": "inline-secret", "addressing_style": "sideways"},
        },
        "events": {"avatar": {"prefix": "../up", "max_size": "big", "content_types": ["png"],
                              "colour": "red"}},
    }
    dev = validate_resource("storage", definition, definition["envs"]["dev"])
    paths = {p for p, _ in dev}
    assert ("envs", "dev", "bucket") in paths
    assert {("events", "avatar", "prefix"), ("events", "avatar", "max_size"),
            ("events", "avatar", "content_types", 0), ("events", "avatar", "colour")} <= paths
    prd = dict(validate_resource("storage", definition, definition["envs"]["prd"]))
    assert "bucket is required" in prd[("envs", "prd", "bucket")]
    assert "never inline" in prd[("envs", "prd", "secret_access_key")]
    assert ("envs", "prd", "addressing_style") in prd
    assert not [p for p in prd if p[0] == "events"]  # shared blocks: reported once (first env)
    good = {"envs": {"dev": {"provider": "local"},
                     "prd": {"provider": "s3", "bucket": "b", "access_key_id": "${env.K}",
                             "secret_access_key": "${env.S}"}},
            "events": EVENTS}
    assert validate_resource("storage", good, good["envs"]["dev"]) == []
    assert validate_resource("storage", good, good["envs"]["prd"]) == []


# -- end to end through dw.workflows.execute -------------------------------------------------------

PRODUCT = """
product: shop
envs: [dev, prd]
storage:
  uploads:
    description: user files
    envs:
      dev: {provider: local, root: .ductwork/files}
      prd:
        provider: s3
        bucket: "${env.S3_BUCKET}"
        region: us-east-1
        endpoint_url: "${env.S3_ENDPOINT}"
        access_key_id: "${env.AWS_ACCESS_KEY_ID}"
        secret_access_key: "${env.AWS_SECRET_ACCESS_KEY}"
        prefix: shop/
    events:
      avatar: {prefix: avatars/, max_size: 1MB, content_types: ["image/*"]}
"""

AVATAR_YAML = """
workflow: set-avatar
steps:
  - tag: upload-avatar
    storage.upload:
      storage: uploads
      event: avatar
      input: {buffer: "${ctx.input.image}", encoding: base64, file_name: "${ctx.input.name}"}
    rollback:
      storage.delete: {storage: uploads, event: avatar, input: {file_key: "${result.file_key}"}}
  - tag: upload-thumbnail
    storage.upload:
      storage: uploads
      event: avatar
      input: {buffer: "${ctx.input.thumb}", file_name: "${ctx.input.thumb_name}"}
output: {key: "${steps.upload-avatar.file_key}", size: "${steps.upload-avatar.size}"}
"""


@pytest.mark.parametrize("env", ["dev", "prd"])
async def test_yaml_upload_rolls_back_when_a_later_step_fails(
    moto_server: MotoServer, tmp_path: Path, env: str
) -> None:
    from ductwork import Ductwork

    folder = tmp_path / "specs" / "shop"
    (folder / "workflows").mkdir(parents=True)
    (folder / "product.yaml").write_text(PRODUCT)
    (folder / "workflows" / "set-avatar.yaml").write_text(AVATAR_YAML)
    bucket = moto_server.create_bucket(f"b-{uuid.uuid4().hex[:12]}")
    environ = {"S3_BUCKET": bucket, "S3_ENDPOINT": moto_server.endpoint_url,
               "AWS_ACCESS_KEY_ID": moto_server.access_key_id,
               "AWS_SECRET_ACCESS_KEY": moto_server.secret_access_key}
    image = base64.b64encode(b"\x89PNG\r\n\x1a\n-avatar").decode()

    def stored() -> list[str]:
        if env == "dev":
            root = folder / ".ductwork" / "files"
            return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                          if p.is_file() and not p.name.startswith(".dw-meta-"))
        objs = moto_server.admin.list_objects_v2(Bucket=bucket).get("Contents", [])
        return sorted(o["Key"].removeprefix("shop/") for o in objs)

    store = tmp_path / "runs.db"
    async with Ductwork(specs=tmp_path / "specs", store=f"sqlite:///{store}",
                        environ=environ) as dw:
        ok = await dw.workflows.execute(
            product="shop", env=env, tag="set-avatar",
            input={"image": image, "name": "me.png", "thumb": "tiny", "thumb_name": "t.gif"})
        assert ok.status == "completed", ok.error
        assert ok.output["size"] == 15 and ok.output["key"].endswith("-me.png")
        assert len(stored()) == 2 and ok.output["key"] in stored()

        bad = await dw.workflows.execute(  # the thumbnail is text/plain: refused, roll back
            product="shop", env=env, tag="set-avatar",
            input={"image": image, "name": "you.png", "thumb": "tiny", "thumb_name": "t.txt"})
        assert bad.status == "rolled_back", bad.error
        assert bad.failed_step == "upload-thumbnail"
        assert f"storage/uploads/avatar (env {env})" in (bad.error or "")
        assert "'text/plain' is not accepted" in (bad.error or "")
        assert not any(k.endswith("-you.png") for k in stored())  # the rollback deleted it
        assert len(stored()) == 2
    for path in tmp_path.iterdir():  # the run store and its WAL/SHM files
        if path.is_file():
            assert moto_server.secret_access_key.encode() not in path.read_bytes(), path


async def test_python_handler_upload_with_rollback(tmp_path: Path) -> None:
    from ductwork import Ductwork

    folder = tmp_path / "specs" / "shop"
    folder.mkdir(parents=True)
    (folder / "product.yaml").write_text(PRODUCT)
    async with Ductwork(specs=tmp_path / "specs", store="sqlite://:memory:", environ={}) as dw:
        @dw.workflows.workflow(product="shop", tag="avatar-py")
        async def handler(ctx: Any) -> Any:
            async def upload() -> Any:
                return await ctx.storage.upload(
                    storage="uploads", event="avatar",
                    input={"buffer": b"\x89PNG-bytes", "file_name": ctx.input["name"]})

            async def remove(result: Any) -> Any:
                return await ctx.storage.delete(storage="uploads", event="avatar",
                                                input={"file_key": result["file_key"]})

            async def explode() -> None:
                raise RuntimeError("profile service down")

            up = await ctx.step("upload", upload, rollback=remove)
            got = await ctx.step("check", lambda: ctx.storage.download(
                storage="uploads", event="avatar", input={"file_key": up["file_key"]}))
            if ctx.input["fail"]:
                await ctx.step("update-profile", explode)
            return {"key": up["file_key"], "size": got["size"]}

        ok = await dw.workflows.execute(product="shop", env="dev", tag="avatar-py",
                                        input={"name": "a.png", "fail": False})
        assert ok.status == "completed", ok.error
        path = folder / ".ductwork" / "files" / ok.output["key"]
        assert path.read_bytes() == b"\x89PNG-bytes" and ok.output["size"] == 10

        bad = await dw.workflows.execute(product="shop", env="dev", tag="avatar-py",
                                         input={"name": "b.png", "fail": True})
        assert bad.status == "rolled_back" and bad.failed_step == "update-profile"
        files = sorted(p.name for p in (folder / ".ductwork" / "files" / "avatars").iterdir())
        # b.png was uploaded, then deleted by the rollback (its stored content type too)
        assert files == [f".dw-meta-{path.name}", path.name]
