"""`dtbase-local`: the whole twin on a laptop, without Azure Functions Core Tools.

Starts (or reuses) the database, applies the migrations, makes sure the default user
exists, then serves the function app and the static web app on one port.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
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
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def prepare(data_dir: Path) -> tuple[dict[str, str], object | None]:
    """Environment, database and schema, in that order; returns the secrets in force and
    the embedded database handle (None when DT_DATABASE_URL names another server)."""
    from local import secrets

    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["DT_LOCAL_MODE"] = "1"
    in_force = secrets.apply(data_dir)
    embedded = None
    if not os.environ.get("DT_DATABASE_URL"):
        from local.database import EmbeddedDatabase

        embedded = EmbeddedDatabase(data_dir)
        os.environ["DT_DATABASE_URL"] = embedded.url

    from dtbase_core import users
    from dtbase_core.config import get_settings, reset_settings
    from dtbase_core.db import session_scope
    from dtbase_core.migrations import upgrade

    reset_settings()
    settings = get_settings()
    assert settings.database_url
    upgrade(settings.database_url)
    with session_scope() as session:
        users.ensure_default_user(session, settings.default_user_password)
    return in_force, embedded


def build_app(static_dir: Path | None):
    from function_app import app
    from function_app.http import startup
    from local.host import FunctionHost

    startup.mark_done()  # prepare() has done the per-process start-up already
    return FunctionHost(app, static_dir=static_dir)


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import uvicorn

    from dtbase_core.config import DEFAULT_USER_EMAIL, ConfigError

    try:
        secrets_in_force, embedded = prepare(args.data_dir)
    except ConfigError as exc:
        print(f"dtbase-local: {exc}", file=sys.stderr)
        return 2
    try:
        asgi = build_app(args.static_dir)
        base = f"http://{args.host}:{args.port}"
        where = f"embedded, in {args.data_dir.resolve()}" if embedded else "DT_DATABASE_URL"
        print(
            f"\nDTBase local twin\n"
            f"  web UI     {base}/\n"
            f"  API        {base}/api   (reference: {base}/api/docs)\n"
            f"  sign in as {DEFAULT_USER_EMAIL}\n"
            f"  password   {secrets_in_force['DT_DEFAULT_USER_PASS']}\n"
            f"  database   {where}\n"
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
        )
    finally:
        from dtbase_core.db import dispose_engine

        dispose_engine()
        if embedded is not None:
            embedded.stop()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
