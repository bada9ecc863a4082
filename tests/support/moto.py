"""A real `moto_server` process (S3 API, in memory) with IAM auth on: start_moto() -> MotoServer."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.process import Server, start_server

REGION = "us-east-1"
# moto enforces IAM signatures after this many requests; the fixture spends them creating
# the test user, so every later request (ours and the connector's) is really authenticated.
_SETUP_ACTIONS = 3
_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})


@dataclass
class MotoServer:
    endpoint_url: str
    port: int
    access_key_id: str
    secret_access_key: str
    region: str = REGION
    server: Server | None = field(default=None, repr=False)
    _admin: Any = field(default=None, repr=False)

    @property
    def admin(self) -> Any:
        """A shared client with the server's valid credentials (not closed by callers)."""
        if self._admin is None:
            self._admin = self.client()
        return self._admin

    def client(self, **overrides: Any) -> Any:
        import boto3

        kw: dict[str, Any] = {
            "endpoint_url": self.endpoint_url, "region_name": self.region,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
        }
        kw.update(overrides)
        return boto3.session.Session().client("s3", **kw)

    def create_bucket(self, name: str) -> str:
        self.admin.create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self.server is not None:
            self.server.stop()
            shutil.rmtree(self.server.dir, ignore_errors=True)  # its log folder (dw-moto-*)
            self.server = None


def moto_binary() -> Path:
    path = Path(sys.executable).parent / "moto_server"
    if not path.exists():
        raise RuntimeError(f"moto_server not found at {path}: pip install 'moto[server]'")
    return path


def start_moto(*, auth: bool = True) -> MotoServer:
    """Start moto_server; with `auth`, requests need the returned IAM access key.

    moto 5.2 checks only header-signed requests: a presigned (query-string) URL makes an
    auth-enabled server answer 500, so tests that fetch presigned URLs use `auth=False`.
    """
    import boto3

    binary = moto_binary()
    env = dict(os.environ)
    env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
    if auth:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(_SETUP_ACTIONS)
    root = Path(tempfile.mkdtemp(prefix="dw-moto-"))
    try:
        server = start_server("moto", root,
                              lambda port: [str(binary), "-H", "127.0.0.1", "-p", str(port)],
                              env=env)
    except RuntimeError:
        shutil.rmtree(root, ignore_errors=True)
        raise
    endpoint = f"http://127.0.0.1:{server.port}"
    if not auth:
        return MotoServer(endpoint, server.port, "AKIAMOTOOPEN00000000", "moto-open-secret",
                          server=server)
    iam = boto3.session.Session().client(
        "iam", endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id="setup", aws_secret_access_key="setup")
    try:
        iam.create_user(UserName="ductwork-test")
        iam.put_user_policy(UserName="ductwork-test", PolicyName="s3-all",
                            PolicyDocument=_POLICY)
        key = iam.create_access_key(UserName="ductwork-test")["AccessKey"]
    except BaseException:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    finally:
        iam.close()
    return MotoServer(endpoint, server.port, key["AccessKeyId"], key["SecretAccessKey"],
                      server=server)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = start_moto()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_open_server() -> Iterator[MotoServer]:
    """A second moto_server without IAM auth (serves presigned URLs)."""
    server = start_moto(auth=False)
    try:
        yield server
    finally:
        server.stop()
