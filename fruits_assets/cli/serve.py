"""The production topology on one machine: ``make serve`` / ``make serve-stop``, and what every
Compose service runs (docs/serve.md).

    python -m fruits_assets.cli.serve start     # PostgreSQL, then code server, daemon, webserver
    python -m fruits_assets.cli.serve stop      # exactly what `start` started (pid files)
    python -m fruits_assets.cli.serve status
    python -m fruits_assets.cli.serve run code|daemon|webserver   # one service, in the foreground

``start`` launches each service as ``python -m fruits_assets.cli.serve run SERVICE``, the command
each Compose service runs too: one source for the commands. ``run`` writes the served instance
(PostgreSQL storage, run queue, run monitoring) and its workspace into DAGSTER_HOME, then becomes
the Dagster process (exec), so signals reach it directly.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .. import settings
from ..defs.instance import init_served_home
from .postgres import LocalPostgres

SERVICES = ("code", "daemon", "webserver")  # started in this order, stopped in the reverse one
MODULE = "fruits_assets.cli.serve"


def service_argv(service: str, python: str = sys.executable) -> list[str]:
    """What `make serve` starts for a service and what its Compose service runs (with ``python``)."""
    return [python, "-m", MODULE, "run", service]


def home() -> Path:
    return Path(settings.dagster_home() or Path(settings.serve_dir()) / "dagster_home").expanduser().resolve()


def _local_postgres() -> LocalPostgres:
    return LocalPostgres(settings.serve_dir(), settings.postgres_port())


def dagster_argv(service: str, dagster_home: Path) -> list[str]:
    """The Dagster command of a service: the venv's executables, beside this interpreter."""
    exe = lambda name: str(Path(sys.executable).with_name(name))  # noqa: E731
    workspace = str(dagster_home / "workspace.yaml")
    if service == "code":
        return [
            exe("dagster"), "code-server", "start", "-m", "fruits_assets.definitions",
            "--location-name", "fruits_assets", "-h", settings.serve_host(), "-p", str(settings.code_port()),
        ]  # fmt: skip
    if service == "daemon":
        return [exe("dagster-daemon"), "run", "-w", workspace]
    if service == "webserver":
        return [
            exe("dagster-webserver"),
            "-w",
            workspace,
            "-h",
            settings.serve_host(),
            "-p",
            str(settings.serve_port()),
        ]
    raise settings.SettingsError(f"unknown service {service!r}: one of {', '.join(SERVICES)}")


def write_instance() -> Path:
    dsn = settings.postgres_dsn() or _local_postgres().dsn()
    return init_served_home(home(), dsn, settings.max_concurrent_runs(), settings.code_host(), settings.code_port())


def cmd_commands() -> int:
    """The command `run` execs for each service, as JSON (the tests compare the running processes)."""
    print(json.dumps({service: dagster_argv(service, home()) for service in SERVICES}))
    return 0


def cmd_run(service: str) -> int:
    dagster_home = write_instance()
    argv = dagster_argv(service, dagster_home)
    env = settings.serve_environment(str(dagster_home))
    settings.check_dotenv_agrees(env)
    print(
        f"{service}: {' '.join(argv)} (DAGSTER_HOME={dagster_home}; FRUITS_DATA_ROOT={env['FRUITS_DATA_ROOT']})",
        flush=True,
    )
    os.execve(argv[0], argv, env)
    return 1  # not reached


# -- pid files: a pid and its start time, so a pid reused by another process is never signalled


def _pid_file(service: str) -> Path:
    return Path(settings.serve_dir()) / "pids" / f"{service}.pid"


def process_start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), or None once it is gone; a zombie (killed,
    not yet reaped by whoever inherited it) counts as gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def started_pid(service: str) -> int | None:
    """The pid `start` recorded for a service, if that very process still runs."""
    path = _pid_file(service)
    try:
        pid_text, started = path.read_text().split()
    except (OSError, ValueError):
        return None
    pid = int(pid_text)
    return pid if process_start_time(pid) == started else None


def _wait_for(what: str, ready, proc: subprocess.Popen | None, log: Path, timeout_s: float) -> None:
    deadline = time.time() + timeout_s
    while not ready():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}); its log {log}:\n{log.read_text()[-2000:]}")
        if time.time() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout_s:.0f} s; its log: {log}")
        time.sleep(0.5)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _daemon_beating(dagster_home: Path, since: float) -> bool:
    """A daemon heartbeat newer than ``since`` in the instance (an earlier daemon's are older)."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef
    from dagster._utils.env import environ

    with (
        environ({"DAGSTER_HOME": str(dagster_home)}),
        DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))) as i,
    ):
        return any(beat.timestamp >= since for beat in i.get_daemon_heartbeats().values())


def cmd_start(timeout_s: float) -> int:
    serve_dir = Path(settings.serve_dir())
    (serve_dir / "logs").mkdir(parents=True, exist_ok=True)
    (serve_dir / "pids").mkdir(parents=True, exist_ok=True)
    if settings.postgres_dsn() is None:
        pg = _local_postgres()
        if pg.init():
            print(f"postgres   initialised in {pg.data} (password in {pg.password_file}, owner-only)")
        pg.start()
        print(f"postgres   127.0.0.1:{pg.port}, log {pg.log}")
    dagster_home = write_instance()
    env = settings.serve_environment(str(dagster_home))
    settings.check_dotenv_agrees(env)
    host = "127.0.0.1" if settings.serve_host() in ("0.0.0.0", "::") else settings.serve_host()
    checks = {
        "code": lambda since: _port_open(host, settings.code_port()),
        "daemon": lambda since: _daemon_beating(dagster_home, since),
        "webserver": lambda since: _http_ok(f"http://{host}:{settings.serve_port()}/server_info"),
    }
    for service in SERVICES:
        log = serve_dir / "logs" / f"{service}.log"
        if started_pid(service):
            print(f"{service:<10} already running (pid {started_pid(service)})")
            continue
        spawned = time.time()
        with open(log, "ab") as out:
            # A session of its own: `stop` signals the service and the processes it started (run workers).
            proc = subprocess.Popen(
                service_argv(service), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        _pid_file(service).write_text(f"{proc.pid} {process_start_time(proc.pid)}\n")
        _wait_for(service, functools.partial(checks[service], spawned), proc, log, timeout_s)
        print(f"{service:<10} pid {proc.pid}, log {log}")
    print(f"ready: http://{host}:{settings.serve_port()} ({settings.instance_description()}); stop: make serve-stop")
    return 0


def cmd_stop(timeout_s: float) -> int:
    for service in reversed(SERVICES):
        pid = started_pid(service)
        if pid is None:
            _pid_file(service).unlink(missing_ok=True)
            continue
        os.killpg(pid, signal.SIGTERM)
        deadline = time.time() + timeout_s
        while process_start_time(pid) is not None and time.time() < deadline:
            time.sleep(0.2)
        if process_start_time(pid) is not None:
            os.killpg(pid, signal.SIGKILL)
        _pid_file(service).unlink(missing_ok=True)
        print(f"{service:<10} stopped (pid {pid})")
    if settings.postgres_dsn() is None and _local_postgres().stop():
        print("postgres   stopped")
    return 0


def cmd_status() -> int:
    for service in SERVICES:
        pid = started_pid(service)
        print(f"{service:<10} {'running, pid ' + str(pid) if pid else 'stopped'}")
    print(f"instance DAGSTER_HOME={home()}; data root FRUITS_DATA_ROOT={settings.data_root()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fruits_assets.cli.serve", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="PostgreSQL, code server, daemon and webserver, each a process")
    start.add_argument("--timeout", type=float, default=300, help="seconds each part may take to be ready")
    stop = sub.add_parser("stop", help="stop what `start` started")
    stop.add_argument("--timeout", type=float, default=30, help="seconds before SIGKILL")
    sub.add_parser("status")
    run = sub.add_parser("run", help="one service in the foreground (what each Compose service runs)")
    run.add_argument("service", choices=SERVICES)
    sub.add_parser("commands", help="the Dagster command of each service, as JSON")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            try:
                return cmd_start(args.timeout)
            except (settings.SettingsError, ValueError, RuntimeError):
                cmd_stop(30)  # nothing left half-started: every part stopped, as `make serve-stop` does
                raise
        if args.command == "stop":
            return cmd_stop(args.timeout)
        if args.command == "status":
            return cmd_status()
        if args.command == "commands":
            return cmd_commands()
        return cmd_run(args.service)
    except (settings.SettingsError, ValueError, RuntimeError) as exc:
        print(f"fruits-assets serve: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
