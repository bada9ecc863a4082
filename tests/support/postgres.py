"""A private, throw-away PostgreSQL cluster for tests: start_postgres() -> PgServer(dsn, stop())."""

from __future__ import annotations

import atexit
import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.ports import free_port, wait_port

SERVER_USER = "postgres"  # initdb/postgres refuse to run as root; CI is root


@dataclass
class PgServer:
    """A running cluster. `dsn` connects as the superuser (password auth over TCP)."""

    dsn: str
    host: str
    port: int
    user: str
    password: str
    root: Path  # private directory: data/, log, unix socket
    bin_dir: Path
    _stopped: bool = field(default=False, repr=False)

    def dsn_for(self, *, dbname: str = "postgres", user: str | None = None,
                password: str | None = None, options: str | None = None) -> str:
        """Another DSN on the same server (other database, user, password or search_path)."""
        from urllib.parse import quote

        u = quote(user or self.user, safe="")
        p = quote(self.password if password is None else password, safe="")
        dsn = f"postgresql://{u}:{p}@{self.host}:{self.port}/{quote(dbname, safe='')}"
        if options:
            dsn += "?options=" + quote(options, safe="")
        return dsn

    def psql(self, sql: str, *, dbname: str = "postgres") -> str:
        """Run SQL through psql over the unix socket (trust auth); returns stdout."""
        out = subprocess.run(
            [str(self.bin_dir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", str(self.root), "-p", str(self.port), "-U", self.user, "-d", dbname,
             "-c", sql],
            capture_output=True, text=True, check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"psql failed ({out.returncode}): {out.stderr.strip()}")
        return out.stdout

    def create_database(self, name: str) -> str:
        """CREATE DATABASE name; returns its DSN."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.dsn_for(dbname=name)

    def stop(self) -> None:
        """Fast shutdown, then remove the private directory. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        data = self.root / "data"
        if (data / "postmaster.pid").exists():
            _as_server_user([str(self.bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                             "stop"], check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def find_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<v>/bin with initdb; fails loudly when none is installed."""
    env = os.environ.get("DUCTWORK_PG_BIN")
    candidates = [env] if env else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=lambda p: _version_key(Path(p).parent.name), reverse=True)
    for c in candidates:
        if c and (Path(c) / "initdb").is_file() and (Path(c) / "pg_ctl").is_file():
            return Path(c)
    raise RuntimeError(
        "PostgreSQL server binaries not found (looked for initdb/pg_ctl under "
        "/usr/lib/postgresql/*/bin and $DUCTWORK_PG_BIN); install them with "
        "`apt-get install -y postgresql`"
    )


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split(".") if x.isdigit())


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _as_server_user(cmd: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    full = ["runuser", "-u", SERVER_USER, "--", *cmd] if _as_root() else cmd
    out = subprocess.run(full, capture_output=True, text=True, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(
            f"{Path(cmd[0]).name} failed ({out.returncode}): {(out.stderr or out.stdout).strip()}"
        )
    return out


def _server_can_use(parent: Path) -> bool:
    # pytest's tmp_path lives under a 0700 root-owned directory the postgres user cannot enter.
    if not _as_root():
        return True
    return _as_server_user(["test", "-x", str(parent), "-a", "-w", str(parent)],
                           check=False).returncode == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_orphans(parent: Path | None = None) -> list[Path]:
    """Stop clusters this module started in test runs that were killed before their finalizer
    (e.g. by `timeout`): each private directory records the PID of the process that owns it."""
    reaped = []
    bin_dir = None
    for root in Path(parent or tempfile.gettempdir()).glob("ductwork-pg-*"):
        owner = root / "owner"
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            continue  # not ours, or still being created
        if pid == os.getpid() or _pid_alive(pid):
            continue
        if (root / "data" / "postmaster.pid").exists():
            bin_dir = bin_dir or find_bin_dir()
            _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m",
                             "immediate", "-w", "stop"], check=False)
        shutil.rmtree(root, ignore_errors=True)
        reaped.append(root)
    return reaped


def start_postgres(tmpdir: str | os.PathLike[str] | None = None) -> PgServer:
    """initdb + start a private cluster on 127.0.0.1:<free port below 32768>; stop() removes it.

    `tmpdir` is where the private directory goes; when the postgres user cannot write there
    (pytest's tmp_path when running as root) the system temp directory is used instead.
    """
    bin_dir = find_bin_dir()
    parent = Path(tmpdir) if tmpdir is not None else Path(tempfile.gettempdir())
    if not _server_can_use(parent):
        parent = Path(tempfile.gettempdir())
    reap_orphans()
    root = Path(tempfile.mkdtemp(prefix="ductwork-pg-", dir=parent))
    (root / "owner").write_text(str(os.getpid()))
    if _as_root():
        shutil.chown(root, SERVER_USER, SERVER_USER)
    password = secrets.token_hex(12)
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")
    if _as_root():
        shutil.chown(pwfile, SERVER_USER, SERVER_USER)
    data = root / "data"
    try:
        _as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-U", SERVER_USER,
                         "--auth-local=trust", "--auth-host=scram-sha-256",
                         f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8", "--locale=C"])
        pwfile.unlink()
        last = ""
        for _ in range(3):  # another process may grab the port between free_port() and bind
            port = free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
            out = _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-l",
                                   str(root / "log"), "-w", "-t", "60", "-o", opts, "start"],
                                  check=False)
            if out.returncode == 0:
                wait_port(port, timeout=30)
                server = PgServer(dsn="", host="127.0.0.1", port=port, user=SERVER_USER,
                                  password=password, root=root, bin_dir=bin_dir)
                server.dsn = server.dsn_for()
                atexit.register(server.stop)  # safety net if a finalizer never runs
                return server
            log = root / "log"
            last = log.read_text()[-2000:] if log.exists() else out.stderr
        raise RuntimeError(f"PostgreSQL did not start: {last.strip()}")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


_shared: list[PgServer] = []  # one cluster for every module that imports the fixture
_users = [0]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PgServer]:
    """Session-scoped private cluster; import this fixture into a test module to use it.

    Each importing module gets its own fixture, so they share one server by reference count:
    it starts with the first user and stops after the last one.
    """
    if not _shared or _shared[0]._stopped:
        _shared[:] = [start_postgres()]
    server = _shared[0]
    _users[0] += 1
    try:
        yield server
    finally:
        _users[0] -= 1
        if _users[0] == 0:
            server.stop()
