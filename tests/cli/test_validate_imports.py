"""`ductwork validate` as a process: what checking a spec imports (startup is most of its time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PRODUCT = """\
product: shop
envs: [dev, prd]
apps:
  stripe:
    envs: {dev: {base_url: "http://127.0.0.1:9"}, prd: {base_url: "https://api.example.com"}}
    events: {charge: {method: POST, path: "/v1/charges/{id}"}}
databases:
  db:
    envs: {dev: {provider: sqlite},
           prd: {provider: postgres, url: "postgresql://app:${secrets.DB_PASSWORD}@db/shop"}}
    tables: {rows: {columns: {id: {type: integer, primary_key: true, auto: true}, v: text}}}
    events: {put: {op: insert, table: rows}}
notifications:
  mail:
    envs: {dev: {provider: outbox}, prd: {provider: outbox}}
    events: {hello: {subject: "Hi {{ name }}", text: "Hello {{ name }}"}}
storage:
  files:
    envs: {dev: {provider: local, root: files}, prd: {provider: s3, bucket: shop-files}}
    events: {upload: {prefix: uploads/}}
graphs:
  social:
    envs: {dev: {provider: ladybug, path: graph.db},
           prd: {provider: falkordb, host: graph.internal, password: "${env.FALKOR_PASSWORD}"}}
"""

WORKFLOW = """\
workflow: order
input: {type: object, properties: {email: {type: string}, amount: {type: integer}}}
steps:
  - tag: charge
    action.run: {app: stripe, event: charge, input: {id: "${ctx.input.email}",
                 body: {amount: "${ctx.input.amount * 100}"}}}
  - tag: put
    database.insert: {database: db, event: put, data: {v: "${default(steps.charge.id, 'x')}"}}
  - tag: mail
    notification.email: {notification: mail, event: hello, recipients: ["${ctx.input.email}"],
                         template: {name: "${upper(ctx.input.email)}"}}
"""

CHECK = """\
import json, sys
from ductwork.cli.main import main
code = main(["validate", "--no-import", sys.argv[1]])
print(json.dumps({"code": code, "loaded": sorted(
    m for m in ("httpx", "lark", "rich", "click", "pygments", "fastapi", "boto3", "psycopg",
                "falkordb", "redis", "ductwork.app", "ductwork.interpreter", "ductwork.store")
    if m in sys.modules)}))
"""


def test_validate_imports_no_http_client_nor_parser_generator(tmp_path: Path) -> None:
    specs = tmp_path / "specs" / "shop"
    (specs / "workflows").mkdir(parents=True)
    (specs / "product.yaml").write_text(PRODUCT)
    (specs / "workflows" / "order.yaml").write_text(WORKFLOW)
    done = subprocess.run([sys.executable, "-c", CHECK, str(specs)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, done.stdout + done.stderr
    # httpx brings its command-line module (rich, pygments, click); Lark is only for an
    # expression the hand-written parser hands on; each provider's configuration is checked
    # without its client library (boto3, psycopg, falkordb), and nothing runs: no engine.
    assert report["loaded"] == []


def test_an_expression_for_lark_still_validates(tmp_path: Path) -> None:
    specs = tmp_path / "specs" / "shop"
    (specs / "workflows").mkdir(parents=True)
    (specs / "product.yaml").write_text(PRODUCT)
    # `'\\n'` has an escape: the hand-written parser leaves it to Lark.
    (specs / "workflows" / "order.yaml").write_text(
        WORKFLOW.replace("${upper(ctx.input.email)}", "${upper(ctx.input.email) + '\\\\n'}"))
    done = subprocess.run([sys.executable, "-c", CHECK, str(specs)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, done.stdout + done.stderr
    assert report["loaded"] == ["lark"]
