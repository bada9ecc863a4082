"""OpenAPI 3 import: a petstore-like document becomes an app block that validates and runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_httpserver import HTTPServer

from ductwork.cli import main
from ductwork.connectors.action import HttpActionConnector
from ductwork.connectors.base import (
    ResourceSpec,
    SecretSet,
    build_connector,
    resolve_refs,
    validate_resource,
)
from ductwork.connectors.openapi import import_openapi, kebab, load_document
from ductwork.errors import ConfigurationError
from tests.support.http import local_http_server

PETSTORE = """
openapi: 3.0.3
info: {title: Swagger Petstore, version: 1.0.0}
servers:
  - url: https://{region}.petstore.example.com/v1
    variables: {region: {default: eu, enum: [eu, us]}}
security:
  - bearerAuth: []
paths:
  /pets:
    parameters:
      - $ref: '#/components/parameters/RequestId'
    get:
      summary: List all pets
      operationId: listPets
      parameters:
        - {name: limit, in: query, required: false, schema: {type: integer, maximum: 100}}
        - {name: tags, in: query, schema: {type: array, items: {type: string}}}
        - {name: Accept, in: header, schema: {type: string}}
      responses:
        '200': {description: A paged array of pets}
    post:
      summary: Create a pet
      operationId: createPets
      requestBody:
        $ref: '#/components/requestBodies/NewPet'
      responses:
        '201': {description: Null response}
  /pets/{petId}:
    parameters:
      - {name: petId, in: path, required: true, schema: {type: string}}
    get:
      summary: Info for a specific pet
      description: |
        Returns one pet.
        Second line.
      operationId: showPetById
      responses:
        '200': {description: Expected response to a valid request}
    delete:
      responses:
        '204': {description: deleted}
    patch:
      operationId: update_pet
      parameters:
        - {name: petId, in: path, required: true, schema: {type: integer}}
        - {name: session, in: cookie, schema: {type: string}}
      requestBody:
        content:
          application/merge-patch+json:
            schema: {type: object, properties: {name: {type: string}, petId: {type: string}}}
      responses:
        '200': {description: ok}
  /pets/{petId}/photo:
    put:
      operationId: uploadPhoto
      requestBody:
        content:
          multipart/form-data:
            schema: {type: object, properties: {file: {type: string, format: binary}}}
      responses:
        '200': {description: ok}
  /login:
    post:
      operationId: getHTTPToken
      security: []
      requestBody:
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              properties: {username: {type: string}, password: {type: string}}
      responses:
        '200': {description: ok}
components:
  parameters:
    RequestId: {name: X-Request-Id, in: header, schema: {type: string}}
  requestBodies:
    NewPet:
      required: true
      content:
        application/json:
          schema: {$ref: '#/components/schemas/NewPet'}
  schemas:
    Pet:
      type: object
      required: [id, name]
      properties: {id: {type: integer}, name: {type: string}}
    NewPet:
      allOf:
        - $ref: '#/components/schemas/Pet'
        - type: object
          properties: {tag: {type: string}}
  securitySchemes:
    bearerAuth: {type: http, scheme: bearer, bearerFormat: JWT}
    apiKeyAuth: {type: apiKey, in: header, name: X-API-Key}
"""


@pytest.fixture
def petstore() -> dict[str, Any]:
    doc = yaml.safe_load(PETSTORE)
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def server() -> Iterator[HTTPServer]:
    with local_http_server() as srv:
        yield srv


def test_kebab() -> None:
    assert kebab("listPets") == "list-pets"
    assert kebab("getHTTPToken") == "get-http-token"
    assert kebab("update_pet") == "update-pet"
    assert kebab("Create  Pet!") == "create-pet"
    assert kebab("get /pets/{petId}") == "get-pets-pet-id"


def test_petstore_events(petstore: dict[str, Any]) -> None:
    block, warnings = import_openapi(petstore, "petstore")
    ev = block["events"]
    assert list(ev) == ["list-pets", "create-pets", "show-pet-by-id", "delete-pets-pet-id",
                        "update-pet", "upload-photo", "get-http-token"]
    assert ev["list-pets"] == {"method": "GET", "path": "/pets", "description": "List all pets",
                               "query": ["limit", "tags"], "headers": ["X-Request-Id"]}
    assert ev["create-pets"] == {"method": "POST", "path": "/pets", "description": "Create a pet",
                                 "headers": ["X-Request-Id"], "body": ["id", "name", "tag"]}
    assert ev["show-pet-by-id"] == {"method": "GET", "path": "/pets/{petId}",
                                    "description": "Info for a specific pet",
                                    "params": ["petId"]}
    assert ev["delete-pets-pet-id"] == {"method": "DELETE", "path": "/pets/{petId}",
                                        "params": ["petId"]}
    assert ev["update-pet"] == {"method": "PATCH", "path": "/pets/{petId}",
                                "params": ["petId"], "body": ["name", "petId"]}
    assert ev["upload-photo"] == {"method": "PUT", "path": "/pets/{petId}/photo",
                                  "params": ["petId"]}
    assert ev["get-http-token"] == {"method": "POST", "path": "/login", "body_type": "form",
                                    "body": ["username", "password"]}
    assert any("cookie parameter 'session'" in w for w in warnings)
    assert any("multipart/form-data not supported" in w for w in warnings)
    assert any("'petId' is both a params and a body field" in w for w in warnings)


def test_petstore_env_config(petstore: dict[str, Any]) -> None:
    block, warnings = import_openapi(petstore, "pet-store", envs=["dev", "prd"])
    assert block["description"] == "Swagger Petstore"
    dev = {"base_url": "https://eu.petstore.example.com/v1",
           "auth": {"type": "bearer", "token": "${env.PET_STORE_TOKEN}"}}
    assert block["envs"] == {"dev": dev, "prd": dev}
    assert block["envs"]["dev"] is not block["envs"]["prd"]
    assert any("not imported: apiKeyAuth" in w for w in warnings)


def test_imported_block_passes_validate(petstore: dict[str, Any]) -> None:
    block, _ = import_openapi(petstore, "petstore", envs=["dev", "prd"])
    for env in ("dev", "prd"):
        assert validate_resource("action", block, block["envs"][env]) == []


@pytest.mark.parametrize(("scheme", "security", "auth"), [
    ({"type": "http", "scheme": "basic"}, [],
     {"type": "basic", "username": "${env.SHOP_USERNAME}", "password": "${env.SHOP_PASSWORD}"}),
    ({"type": "apiKey", "in": "query", "name": "api_key"}, [],
     {"type": "api_key", "in": "query", "name": "api_key", "value": "${env.SHOP_API_KEY}"}),
    ({"type": "apiKey", "in": "header", "name": "X-Key"}, [],
     {"type": "api_key", "in": "header", "name": "X-Key", "value": "${env.SHOP_API_KEY}"}),
    ({"type": "oauth2", "flows": {"clientCredentials": {
        "tokenUrl": "https://auth.shop.example/token", "scopes": {"read": "", "write": ""}}}},
     ["read"],
     {"type": "oauth2_client_credentials", "token_url": "https://auth.shop.example/token",
      "client_id": "${env.SHOP_CLIENT_ID}", "client_secret": "${env.SHOP_CLIENT_SECRET}",
      "scope": ["read"]}),
    ({"type": "oauth2", "flows": {"authorizationCode": {
        "authorizationUrl": "https://a", "tokenUrl": "https://t", "scopes": {}}}}, [],
     {"type": "bearer", "token": "${env.SHOP_TOKEN}"}),
    ({"type": "openIdConnect", "openIdConnectUrl": "https://x/.well-known"}, [],
     {"type": "bearer", "token": "${env.SHOP_TOKEN}"}),
    ({"type": "apiKey", "in": "cookie", "name": "sid"}, [], {"type": "none"}),
])
def test_security_schemes(scheme: dict[str, Any], security: list[str], auth: dict[str, Any]
                          ) -> None:
    doc = {"openapi": "3.1.0", "info": {"title": "Shop"}, "servers": [{"url": "https://x"}],
           "security": [{"s": security}], "paths": {"/a": {"get": {"operationId": "a"}}},
           "components": {"securitySchemes": {"s": scheme}}}
    block, _ = import_openapi(doc, "shop")
    assert block["envs"]["dev"]["auth"] == auth
    assert validate_resource("action", block, block["envs"]["dev"]) == []


def test_no_security_means_no_auth_and_relative_server() -> None:
    doc = {"openapi": "3.0.0", "servers": [{"url": "/api"}], "paths": {}}
    block, warnings = import_openapi(doc, "svc")
    assert block["envs"]["dev"] == {"base_url": "${env.SVC_BASE_URL}"}
    assert block["events"] == {}
    assert any("relative" in w and "SVC_BASE_URL" in w for w in warnings)
    assert any("no paths" in w for w in warnings)


def test_base_url_override(petstore: dict[str, Any]) -> None:
    block, _ = import_openapi(petstore, "petstore", base_url="http://127.0.0.1:9999/v1")
    assert block["envs"]["dev"]["base_url"] == "http://127.0.0.1:9999/v1"


def test_duplicate_operation_ids_get_suffixes() -> None:
    doc = {"openapi": "3.0.0", "servers": [{"url": "https://x"}], "paths": {
        "/a": {"get": {"operationId": "fetch"}}, "/b": {"get": {"operationId": "fetch"}},
        "/c": {"post": {"operationId": "2faVerify"}}}}
    block, warnings = import_openapi(doc, "x")
    assert list(block["events"]) == ["fetch", "fetch-2", "post-2fa-verify"]
    assert any("'fetch' is used twice" in w for w in warnings)


def test_swagger2_and_garbage_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"Swagger 2\.0 documents are not supported"):
        import_openapi({"swagger": "2.0", "paths": {}}, "x")
    with pytest.raises(ConfigurationError, match="not an OpenAPI 3 document"):
        import_openapi({"paths": {}}, "x")
    with pytest.raises(ConfigurationError, match="app name"):
        import_openapi({"openapi": "3.0.0"}, "bad name")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigurationError, match="expected a mapping"):
        load_document(bad)
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_document(tmp_path / "missing.yaml")


def test_cli_writes_a_product_fragment(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    src = tmp_path / "petstore.json"
    src.write_text(json.dumps(yaml.safe_load(PETSTORE)))
    out = tmp_path / "apps.yaml"
    rc = main(["import-openapi", str(src), "--app", "petstore", "--env", "dev", "--env", "prd",
               "-o", str(out)])
    assert rc == 0
    err = capsys.readouterr().err
    assert "wrote app 'petstore' with 7 events" in err and "warning: " in err
    text = out.read_text()
    assert text.startswith("# generated by `ductwork import-openapi petstore.json`")
    product = yaml.safe_load(text)
    assert set(product["apps"]["petstore"]["envs"]) == {"dev", "prd"}
    assert product["apps"]["petstore"]["events"]["show-pet-by-id"]["path"] == "/pets/{petId}"


def test_cli_prints_and_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    src = tmp_path / "petstore.yaml"
    src.write_text(PETSTORE)
    assert main(["import-openapi", str(src), "--app", "petstore"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert list(printed["apps"]["petstore"]["envs"]) == ["dev"]
    (tmp_path / "v2.yaml").write_text("swagger: '2.0'\npaths: {}\n")
    assert main(["import-openapi", str(tmp_path / "v2.yaml"), "--app", "x"]) == 1
    assert "error: Swagger 2.0" in capsys.readouterr().err


async def test_imported_app_runs_against_a_real_server(
    petstore: dict[str, Any], server: HTTPServer
) -> None:
    block, _ = import_openapi(petstore, "petstore", base_url=server.url_for("/v1"))
    secrets = SecretSet()
    config = resolve_refs(block["envs"]["dev"], environ={"PETSTORE_TOKEN": "pet-token-1"},
                          collect=secrets)
    spec = ResourceSpec(kind="action", name="petstore", env="dev", product="zoo", config=config,
                        definition=block, secrets=secrets)
    conn = build_connector(spec)
    assert isinstance(conn, HttpActionConnector)
    server.expect_request("/v1/pets/7", method="GET",
                          headers={"Authorization": "Bearer pet-token-1"}) \
        .respond_with_json({"id": 7, "name": "Rex"})
    server.expect_request("/v1/pets", method="POST").respond_with_json({"id": 8}, 201)
    server.expect_request("/v1/login", method="POST").respond_with_json({"token": "t"})
    try:
        assert await conn.run("show-pet-by-id", {"petId": 7}) == {"id": 7, "name": "Rex"}
        assert await conn.run("create-pets", {"name": "Bo", "tag": "dog",
                                              "x-request-id": "r-1"}) == {"id": 8}
        req = server.log[-1][0]
        assert req.get_json() == {"name": "Bo", "tag": "dog"}
        assert req.headers["X-Request-Id"] == "r-1"
        await conn.run("get-http-token", {"username": "u", "password": "p"})
        assert server.log[-1][0].form.to_dict() == {"username": "u", "password": "p"}
    finally:
        await conn.aclose()
