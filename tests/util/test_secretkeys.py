"""Which keys hold a credential: by name, in any spelling (snake, camel, kebab, upper case)."""

from __future__ import annotations

import pytest

from ductwork.util.secretkeys import secret_key


@pytest.mark.parametrize("key", [
    "password", "Password", "db_password", "passwd", "secret", "client_secret", "clientSecret",
    "token", "access_token", "accessToken", "refresh-token", "X-Auth-Token", "api_key", "apiKey",
    "APIKey", "api-key", "x-api-key", "authorization", "Authorization", "cookie", "Set-Cookie",
    "private_key", "privateKey", "aws_secret_access_key", "AWS_ACCESS_KEY", "stripeSecretKey",
    "signing_key", "credentials", "passphrase", "sessionToken"])
def test_credential_keys_are_masked(key: str) -> None:
    assert secret_key(key)


@pytest.mark.parametrize("key", [
    "token_count", "tokens_used", "secretary", "keyboard", "key", "public_key", "monkey",
    "password_changed_at", "cookie_consent", "auth_method", "email", "", "-"])
def test_ordinary_keys_are_shown(key: str) -> None:
    assert not secret_key(key)
