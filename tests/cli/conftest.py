"""CLI tests reuse the store backends fixture (SQLite and PostgreSQL)."""

from tests.store.conftest import store_url_any  # noqa: F401 (fixture)
from tests.support.postgres import postgres_server  # noqa: F401 (session fixture)
