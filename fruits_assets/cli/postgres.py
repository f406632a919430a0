"""The served instance's own PostgreSQL server (when no FRUITS_POSTGRES_DSN is given).

Debian's ``postgresql`` binaries run a cluster in ``$FRUITS_SERVE_DIR/postgres``, listening on
127.0.0.1 only (no Unix socket). Authentication is by password (scram-sha-256, host and local):
the password is generated at the first start and kept in ``$FRUITS_SERVE_DIR/postgres.password``,
readable by its owner only; nothing of it is in the repository. PostgreSQL refuses to run as
root: under root (containers, CI) the server runs as Debian's ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

from ..settings import SettingsError

USER, DATABASE = "fruits", "dagster"


def bin_dir() -> Path:
    """The folder of pg_ctl and initdb: on the PATH, else Debian's newest /usr/lib/postgresql/N/bin."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(re.sub(r"\D", "", p) or 0))
    if not versions:
        raise SettingsError("PostgreSQL is not installed: apt-get install postgresql (make serve does it)")
    return Path(versions[-1]).parent


class LocalPostgres:
    def __init__(self, serve_dir: str | os.PathLike, port: int):
        self.root = Path(serve_dir)
        self.folder = self.root / "postgres"
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self.password_file = self.root / "postgres.password"
        self.port = port
        self.bin = bin_dir()

    def _owner(self) -> pwd.struct_passwd | None:
        return pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        owner = self._owner()
        prefix = ["runuser", "-u", owner.pw_name, "--"] if owner else []
        return subprocess.run(
            [*prefix, str(self.bin / argv[0]), *argv[1:]], check=check, capture_output=True, text=True, cwd="/"
        )

    def password(self) -> str:
        try:
            return self.password_file.read_text().strip()
        except FileNotFoundError:
            raise SettingsError(
                f"no PostgreSQL password at {self.password_file}: `make serve` initialises the server "
                "(or set FRUITS_POSTGRES_DSN to an existing one)"
            ) from None

    def dsn(self) -> str:
        return f"postgresql://{USER}:{self.password()}@127.0.0.1:{self.port}/{DATABASE}"

    def init(self) -> bool:
        """Create the cluster and its password once; False when it exists."""
        if (self.data / "PG_VERSION").exists():
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.password_file.exists():
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(24) + "\n")
        self.folder.mkdir(mode=0o700, exist_ok=True)
        owner = self._owner()
        pwfile = self.folder / ".initdb-password"  # initdb reads it as the server's user, then it is removed
        pwfile.write_text(self.password() + "\n")
        os.chmod(pwfile, 0o600)
        if owner:
            for path in (self.folder, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        try:
            done = self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                check=False,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode:
            raise RuntimeError(f"initdb failed: {(done.stderr or done.stdout).strip()[-500:]}")
        return True

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def start(self, timeout_s: int = 60) -> None:
        if not self.running():
            options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories=''"
            done = self._run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", str(timeout_s), "start",
                check=False,
            )  # fmt: skip
            if done.returncode:
                tail = self.log.read_text()[-800:] if self.log.exists() else ""
                raise RuntimeError(f"PostgreSQL did not start on 127.0.0.1:{self.port}: {done.stderr.strip()} {tail}")
        self._create_database(timeout_s)

    def _create_database(self, timeout_s: int) -> None:
        import psycopg2

        deadline = time.time() + timeout_s
        while True:
            try:
                conn = psycopg2.connect(
                    host="127.0.0.1", port=self.port, user=USER, password=self.password(), dbname="postgres"
                )
                break
            except psycopg2.OperationalError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
                if cur.fetchone() is None:
                    cur.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            conn.close()

    def stop(self) -> bool:
        """Stop this cluster (and only it: pg_ctl finds its postmaster in its data folder)."""
        if not (self.data / "PG_VERSION").exists() or not self.running():
            return False
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        return True
