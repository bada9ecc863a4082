"""Import an OpenAPI 3 document as an app block (base URL, auth stub, events) for a product file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from ductwork.connectors.action_config import parse_event
from ductwork.errors import ConfigurationError

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# OpenAPI says these header parameters are ignored: the client sets them itself.
_IGNORED_HEADERS = {"accept", "content-type", "authorization"}
_FORM = "application/x-www-form-urlencoded"


def load_document(path: str | Path) -> dict[str, Any]:
    """Read a .yaml/.yml/.json OpenAPI document (YAML is a superset of JSON)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigurationError(f"cannot read {p}: {e.strerror or e}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigurationError(f"{p} is not valid YAML/JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigurationError(f"{p} is not an OpenAPI document (expected a mapping)")
    return doc


def kebab(text: str) -> str:
    """`createPet`, `create_pet` -> `create-pet`; `getHTTPStatus` -> `get-http-status`."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1-\2", text)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def env_name(app: str) -> str:
    """The prefix of the env vars an imported app refers to: `my-shop` -> `MY_SHOP`."""
    return re.sub(r"[^A-Z0-9]+", "_", app.upper()).strip("_") or "APP"


class _Importer:
    def __init__(self, doc: dict[str, Any], app: str) -> None:
        self.doc, self.app, self.prefix = doc, app, env_name(app)
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def deref(self, node: Any, depth: int = 0) -> Any:
        """Follow local `$ref`s (`#/components/...`); other refs are reported and dropped."""
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if depth > 32:
                self.warn(f"$ref chain too deep at {ref}")
                return {}
            if not isinstance(ref, str) or not ref.startswith("#/"):
                self.warn(f"external $ref {ref!r} is not followed")
                return {}
            target: Any = self.doc
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    self.warn(f"$ref {ref} points nowhere")
                    return {}
                target = target[part]
            node, depth = target, depth + 1
        return node

    def properties(self, schema: Any, depth: int = 0) -> list[str]:
        """Top-level property names of an object schema (allOf merged, oneOf/anyOf united)."""
        schema = self.deref(schema)
        if not isinstance(schema, dict) or depth > 16:
            return []
        names = list((schema.get("properties") or {}).keys())
        for key in ("allOf", "oneOf", "anyOf"):
            for sub in schema.get(key) or []:
                names += [n for n in self.properties(sub, depth + 1) if n not in names]
        return [str(n) for n in names]

    def base_url(self, override: str | None) -> str:
        if override:
            return override
        servers = self.doc.get("servers") or []
        server = self.deref(servers[0]) if servers else None
        if not isinstance(server, dict):
            server = {}
        url = server.get("url")
        if isinstance(url, str) and url:
            for name, var in (server.get("variables") or {}).items():
                url = url.replace("{" + name + "}", str((var or {}).get("default", "")))
            if re.match(r"^https?://", url):
                return url.rstrip("/") or url
            self.warn(f"servers[0] url {url!r} is relative; set {self.prefix}_BASE_URL "
                      "or pass --base-url")
        else:
            self.warn(f"the document declares no servers; set {self.prefix}_BASE_URL "
                      "or pass --base-url")
        return f"${{env.{self.prefix}_BASE_URL}}"

    def auth(self) -> dict[str, Any] | None:
        schemes = (self.doc.get("components") or {}).get("securitySchemes") or {}
        if not schemes:
            return None
        chosen: Any = None
        scopes: Any = []
        requirements = list(self.doc.get("security") or [])
        for path_item in (self.doc.get("paths") or {}).values():
            for method in HTTP_METHODS:
                op = (path_item or {}).get(method) if isinstance(path_item, dict) else None
                if isinstance(op, dict):
                    requirements += op.get("security") or []
        for req in requirements:
            if isinstance(req, dict) and req:
                chosen, scopes = next(iter(req.items()))
                break
        if chosen is None or chosen not in schemes:
            chosen = next(iter(schemes))
        others = [s for s in schemes if s != chosen]
        if others:
            self.warn(f"auth uses security scheme '{chosen}'; not imported: {', '.join(others)}")
        scheme = self.deref(schemes[chosen]) or {}
        kind = str(scheme.get("type", "")).lower()
        p = self.prefix
        if kind == "http" and str(scheme.get("scheme", "")).lower() == "basic":
            return {"type": "basic", "username": f"${{env.{p}_USERNAME}}",
                    "password": f"${{env.{p}_PASSWORD}}"}
        if kind == "http":
            return {"type": "bearer", "token": f"${{env.{p}_TOKEN}}"}
        if kind == "apikey":
            where = scheme.get("in", "header")
            if where == "cookie":
                self.warn(f"security scheme '{chosen}' is a cookie API key, which is not "
                          "supported; auth left as none")
                return {"type": "none"}
            return {"type": "api_key", "in": where, "name": scheme.get("name", "X-API-Key"),
                    "value": f"${{env.{p}_API_KEY}}"}
        if kind == "oauth2":
            flow = (scheme.get("flows") or {}).get("clientCredentials")
            if isinstance(flow, dict) and flow.get("tokenUrl"):
                auth: dict[str, Any] = {
                    "type": "oauth2_client_credentials", "token_url": flow["tokenUrl"],
                    "client_id": f"${{env.{p}_CLIENT_ID}}",
                    "client_secret": f"${{env.{p}_CLIENT_SECRET}}",
                }
                if scopes:
                    auth["scope"] = list(scopes)
                return auth
            self.warn(f"security scheme '{chosen}' is OAuth2 without a client-credentials "
                      f"flow; imported as a bearer token from {p}_TOKEN")
            return {"type": "bearer", "token": f"${{env.{p}_TOKEN}}"}
        if kind == "openidconnect":
            self.warn(f"security scheme '{chosen}' is OpenID Connect; imported as a bearer "
                      f"token from {p}_TOKEN")
            return {"type": "bearer", "token": f"${{env.{p}_TOKEN}}"}
        self.warn(f"security scheme '{chosen}' of type {kind!r} is not supported")
        return None

    def events(self) -> dict[str, Any]:
        events: dict[str, Any] = {}
        paths = self.doc.get("paths") or {}
        if not isinstance(paths, dict) or not paths:
            self.warn("the document has no paths: no events imported")
        for path, item in paths.items():
            item = self.deref(item)
            if not isinstance(item, dict):
                continue
            for method in HTTP_METHODS:
                op = item.get(method)
                if not isinstance(op, dict):
                    continue
                name = self.event_name(str(path), method, op, events)
                events[name] = self.event(str(path), method, item, op, name)
        return events

    def event_name(self, path: str, method: str, op: dict[str, Any], taken: dict[str, Any]) -> str:
        base = kebab(str(op.get("operationId") or "")) or kebab(f"{method} {path}")
        if not base[:1].isalpha():  # product-file names start with a letter
            base = f"{method}-{base}"
        name, n = base, 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
        if name != base:
            self.warn(f"event name '{base}' is used twice; {method.upper()} {path} is '{name}'")
        return name

    def event(
        self, path: str, method: str, item: dict[str, Any], op: dict[str, Any], name: str
    ) -> dict[str, Any]:
        event: dict[str, Any] = {"method": method.upper(), "path": path}
        text = op.get("summary") or op.get("description")
        if isinstance(text, str) and text.strip():
            event["description"] = text.strip().splitlines()[0]
        params: dict[tuple[str, str], dict[str, Any]] = {}
        for raw in [*(item.get("parameters") or []), *(op.get("parameters") or [])]:
            param = self.deref(raw)
            if isinstance(param, dict) and param.get("name") and param.get("in"):
                params[(str(param["in"]), str(param["name"]))] = param  # operation wins
        places: dict[str, list[str]] = {"params": [], "query": [], "headers": [], "body": []}
        for (where, pname), _param in params.items():
            if where == "path":
                places["params"].append(pname)
            elif where == "query":
                places["query"].append(pname)
            elif where == "header" and pname.lower() not in _IGNORED_HEADERS:
                places["headers"].append(pname)
            elif where == "cookie":
                self.warn(f"{name}: cookie parameter '{pname}' is not supported")
        missing = [p for p in re.findall(r"\{([^{}]*)\}", path) if p not in places["params"]]
        places["params"] += missing
        body = self.deref(op.get("requestBody"))
        if isinstance(body, dict) and body.get("content"):
            content = body["content"]
            json_type = next((t for t in content if t == "application/json"
                              or t.split(";")[0].endswith("+json")), None)
            if json_type is not None:
                places["body"] = self.properties((content[json_type] or {}).get("schema"))
            elif _FORM in content:
                places["body"] = self.properties((content[_FORM] or {}).get("schema"))
                event["body_type"] = "form"
            else:
                self.warn(f"{name}: request body type(s) {', '.join(content)} not supported "
                          "(json and form are); pass the body with the structured form")
        for place in ("params", "query", "headers", "body"):
            if places[place]:
                event[place] = places[place]
        seen: dict[str, str] = {}
        for place in ("params", "body", "query", "headers"):
            for field in places[place]:
                if field in seen:
                    self.warn(f"{name}: '{field}' is both a {seen[field]} and a {place} field; "
                              f"flat input sends it to {seen[field]}, use '{place}:{field}'")
                seen.setdefault(field, place)
        try:
            parse_event(name, event)
        except ValueError as e:
            self.warn(f"{name}: {e}")
        return event


def import_openapi(
    doc: dict[str, Any], app: str, *, base_url: str | None = None,
    envs: list[str] | tuple[str, ...] = ("dev",),
) -> tuple[dict[str, Any], list[str]]:
    """The app block for `doc` (`{description?, envs, events}`) and the warnings met on the way."""
    version = str(doc.get("openapi", ""))
    if not version.startswith("3."):
        if doc.get("swagger"):
            raise ConfigurationError(
                f"Swagger {doc['swagger']} documents are not supported; convert to OpenAPI 3 "
                "first (e.g. with swagger2openapi)")
        raise ConfigurationError("not an OpenAPI 3 document (no 'openapi: 3.x' field)")
    if not app or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", app):
        raise ConfigurationError(f"app name {app!r} must be letters, digits, '-', '_' or '.'")
    imp = _Importer(doc, app)
    env_config: dict[str, Any] = {"base_url": imp.base_url(base_url)}
    auth = imp.auth()
    if auth is not None:
        env_config["auth"] = auth
    block: dict[str, Any] = {}
    title = (doc.get("info") or {}).get("title")
    if isinstance(title, str) and title:
        block["description"] = title
    block["envs"] = {env: json.loads(json.dumps(env_config)) for env in envs}
    block["events"] = imp.events()
    return block, imp.warnings


def render_yaml(app: str, block: dict[str, Any], source: str = "") -> str:
    """The block as a product-file fragment under `apps:`."""
    head = f"# generated by `ductwork import-openapi {source}`".rstrip() + "; review before use\n"
    body = yaml.safe_dump({"apps": {app: block}}, sort_keys=False, allow_unicode=True,
                          default_flow_style=False, width=100)
    return head + body
