"""S3 storage provider (boto3; `endpoint_url` for S3-compatible stores such as MinIO or moto)."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from ductwork.connectors.base import ResourceSpec
from ductwork.connectors.storage import (
    BaseStorage,
    StorageProblem,
    normalize_prefix,
)
from ductwork.connectors.util import (
    duration_s,
    retryable_status,
)
from ductwork.errors import ConnectorError

# One boto3 session per process: building a session reloads botocore's data files (~0.3 s),
# and sessions are not thread-safe, so client creation from it is serialized.
_SESSION: Any = None
_SESSION_LOCK = threading.Lock()

_CREDENTIAL_CODES = {
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId", "InvalidToken",
    "ExpiredToken", "AuthFailure", "UnrecognizedClientException",
}


class S3Storage(BaseStorage):
    """One boto3 client per connector (clients are thread-safe); every call runs in a thread.

    `file_key` is relative to the bucket and the env's `prefix`. The `url` of an upload is the
    object's plain (unsigned) URL, or `public_base_url/<key>` when configured: it is stored
    with the step result, so it must carry no credential. Use `signed_url` for access.
    """

    provider = "s3"

    def __init__(self, spec: ResourceSpec) -> None:
        super().__init__(spec)
        cfg = spec.config
        bucket = cfg.get("bucket")
        if not isinstance(bucket, str) or not bucket:
            raise spec.error("config needs `bucket` (the S3 bucket name)")
        self.bucket = bucket
        try:
            self.prefix = normalize_prefix(cfg.get("prefix"))
        except ValueError as e:
            raise spec.error(f"config prefix is refused: {e}") from None
        if bool(cfg.get("access_key_id")) != bool(cfg.get("secret_access_key")):
            raise spec.error("config needs both access_key_id and secret_access_key, or neither")
        public = cfg.get("public_base_url")
        self.public_base_url = str(public).rstrip("/") if public else None
        self.endpoint_url = str(cfg["endpoint_url"]) if cfg.get("endpoint_url") else None
        try:
            # Seconds for botocore; written as a duration (bare number = milliseconds).
            timeout = duration_s(cfg.get("timeout", "30s"), "config timeout")
        except ValueError as e:
            raise spec.error(str(e)) from None
        self._config = Config(
            region_name=cfg.get("region") or "us-east-1",
            signature_version="s3v4",
            connect_timeout=min(timeout, 10.0),
            read_timeout=timeout,
            retries={"max_attempts": int(cfg.get("max_attempts") or 3), "mode": "standard"},
            s3={"addressing_style": cfg.get("addressing_style") or "auto"},
        )
        self.client = _client(
            endpoint_url=self.endpoint_url, config=self._config,
            aws_access_key_id=cfg.get("access_key_id") or None,
            aws_secret_access_key=cfg.get("secret_access_key") or None,
            aws_session_token=cfg.get("session_token") or None,
        )
        self._unsigned: Any = None
        self._lock = threading.Lock()

    def full_key(self, key: str) -> str:
        return self.prefix + key

    def _put(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.full_key(key), Body=data,
                               ContentType=content_type)

    def _get(self, key: str) -> tuple[bytes, str | None]:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.full_key(key))
        except ClientError as e:
            if _code(e) in ("NoSuchKey", "404"):
                raise StorageProblem(f"file '{key}' not found", status=404) from None
            raise
        body = obj["Body"]
        try:
            return body.read(), obj.get("ContentType")
        finally:
            body.close()

    def _remove(self, key: str) -> bool:
        full = self.full_key(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=full)
            existed = True
        except ClientError as e:
            if _code(e) not in ("404", "NoSuchKey", "NotFound"):
                raise
            existed = False
        # Deleting a missing key succeeds on S3; a missing bucket still fails here, loudly.
        self.client.delete_object(Bucket=self.bucket, Key=full)
        return existed

    def _list(self, prefix: str, limit: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.full_key(prefix),
            PaginationConfig={"MaxItems": limit, "PageSize": min(limit, 1000)},
        )
        for page in pages:
            for obj in page.get("Contents") or ():
                found.append({
                    "file_key": obj["Key"][len(self.prefix):],
                    "size": obj["Size"],
                    "last_modified": obj["LastModified"],
                })
        return found[:limit]

    def _url(self, key: str) -> str:
        if self.public_base_url:
            return f"{self.public_base_url}/{quote(key)}"
        with self._lock:
            if self._unsigned is None:
                # An unsigned client makes no request; it only renders the object's URL
                # with the same endpoint and addressing style as the real client.
                self._unsigned = _client(
                    endpoint_url=self.endpoint_url,
                    config=self._config.merge(Config(signature_version=UNSIGNED)),
                )
        url: str = self._unsigned.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.full_key(key)})
        return url

    def _signed(self, key: str, expires_in: int) -> str:
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.full_key(key)},
            ExpiresIn=expires_in,
        )
        return url

    def _fail(self, op: str, event: str, key: str, exc: Exception) -> ConnectorError:
        where = f"bucket '{self.bucket}'"
        if self.endpoint_url:
            where += f" at {self.endpoint_url}"
        if isinstance(exc, ClientError):
            code = _code(exc)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            msg = exc.response.get("Error", {}).get("Message") or code
            if code in ("NoSuchBucket",) or (code == "404" and op == "delete"):
                text = f"{where} does not exist; create it or fix `bucket`"
            elif code in _CREDENTIAL_CODES:
                text = (f"S3 rejected the credentials ({code}); check access_key_id / "
                        "secret_access_key for this environment")
            elif code in ("AccessDenied", "AllAccessDisabled", "403"):
                text = f"access denied to {where} ({code}); check the credentials' permissions"
            else:
                text = f"S3 answered {code}: {msg}"
            return self.rs.error(f"{op} of '{key}' failed: {text}", event=event, status=status,
                                 retryable=retryable_status(status))
        if isinstance(exc, NoCredentialsError):
            return self.rs.error(
                f"{op} of '{key}' failed: no AWS credentials; set access_key_id and "
                "secret_access_key (e.g. \"${env.AWS_ACCESS_KEY_ID}\") or the AWS environment",
                event=event)
        if isinstance(exc, BotoCoreError):
            return self.rs.error(f"{op} of '{key}' failed: cannot reach S3 for {where}: {exc}",
                                 event=event, retryable=True)
        return super()._fail(op, event, key, exc)

    async def aclose(self) -> None:
        for client in (self.client, self._unsigned):
            if client is not None:
                client.close()


def _client(**kw: Any) -> Any:
    """An S3 client (thread-safe once built) from the process-wide session."""
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is None:
            _SESSION = boto3.session.Session()
        return _SESSION.client("s3", **kw)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "")


def create(spec: ResourceSpec) -> S3Storage:
    return S3Storage(spec)
