"""``tokenwheel``: serve, campus, migrate, purge, rebuild-index, export-events."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

from .settings import Settings, SettingsError


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        print(f"tokenwheel: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _setup_logging(settings: Settings) -> None:
    from .redaction import install_redaction

    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
    )
    install_redaction()


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from .store import migrate
    from .store.database import make_engine

    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    engine.dispose()
    print(f"database is at the latest schema: {engine.url.render_as_string(hide_password=True)}")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Migrate, then run gunicorn (threads; the app is built in each worker, after the
    fork, so no model or thread exists in the parent)."""
    from gunicorn.app.base import BaseApplication

    # never torch here: this process forks the workers and only supervises them
    from . import gunicorn_conf as conf
    from .inference.cpu import dtype_problem

    problem = dtype_problem(settings.dtype)
    if problem is not None:
        print(f"tokenwheel: {problem}", file=sys.stderr)
        return 2
    cmd_migrate(args, settings)

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options: dict[str, Any] = {
                "bind": f"{args.host}:{args.port}",
                "workers": args.workers,
                "worker_class": conf.worker_class,
                "threads": args.threads,
                "timeout": conf.timeout,
                "graceful_timeout": conf.graceful_timeout,
                "accesslog": "-" if args.access_log else None,
                "logger_class": conf.logger_class,
                "preload_app": conf.preload_app,
                # several servers on one machine (tests, benchmarks) must not share one
                "control_socket_disable": True,
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            from . import create_app

            return create_app(settings, warm_up=True)

    print(f"Token Wheel on http://{args.host}:{args.port}/ (API docs: /api/docs)", flush=True)
    Server().run()
    return 0


def cmd_campus(args: argparse.Namespace, settings: Settings) -> int:
    """HAProxy in front of three servers on this machine, in the foreground."""
    from .campus import Campus, run

    ports = [args.first_port + n for n in range(3)]
    serve_args = ["--access-log"] if args.access_log else []
    return run(Campus(port=args.port, server_ports=ports, serve_args=serve_args))


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    from . import create_app
    from .jobs import run_purge

    app = create_app(settings, start_scheduler=False)
    result = run_purge(
        app.extensions["tokenwheel.maintenance"], app.extensions["tokenwheel.engine"]
    )
    if result is None:
        print("another process is purging; nothing done")
    else:
        print(f"{result[0]} sessions expired, {result[1]} purged")
    return 0


def cmd_rebuild_index(args: argparse.Namespace, settings: Settings) -> int:
    from . import create_app

    app = create_app(settings, start_scheduler=False)
    count = app.extensions["tokenwheel.maintenance"].rebuild_index()
    print(f"session_index and the class tables rebuilt from the events of {count} sessions")
    return 0


def _since(text: str) -> datetime:
    """An ISO date or date-time; a date means its midnight, no zone means UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date or date-time (e.g. 2026-11-25 or 2026-11-25T09:00)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _class_code(text: str) -> str:
    from .domain.errors import InvalidCommand
    from .domain.rules import check_class_code

    try:
        check_class_code(text)
    except InvalidCommand as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    return text


def cmd_export_events(args: argparse.Namespace, settings: Settings) -> int:
    """Stream the event table, oldest first, without loading a model."""
    from . import exports
    from .store.database import make_engine
    from .store.records import EventFilter
    from .store.sql import SqlEventStore

    engine = make_engine(settings.database_url)
    rows = SqlEventStore(engine).event_rows(
        EventFilter(class_code=args.class_code, since=args.since)
    )
    lines = exports.iter_csv(rows) if args.format == "csv" else exports.iter_jsonl(rows)
    target: Any = (
        open(args.output, "w", encoding="utf-8", newline="")  # noqa: SIM115
        if args.output
        else nullcontext(sys.stdout)
    )
    with target as out:
        out.writelines(lines)
    engine.dispose()
    return 0


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from .bench import run

    run(
        args.model,
        args.students,
        args.seconds,
        args.repeats,
        Path(args.output),
        str(settings.cache_dir),
        think=args.think,
    )
    return 0


def _think(text: str) -> tuple[float, float] | None:
    """``1-3`` (seconds a student looks at the wheel before choosing) or ``0`` (skip)."""
    if text.strip() in {"0", "none", "off"}:
        return None
    try:
        low, high = (float(part) for part in text.split("-", 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LOW-HIGH seconds, e.g. 1-3") from None
    if not 0 <= low <= high:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 0 <= LOW <= HIGH")
    return low, high


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokenwheel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="migrate the database and serve the API and pages")
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--threads", type=int, default=16)
    serve.add_argument("--access-log", action="store_true")
    serve.set_defaults(func=cmd_serve)
    campus = sub.add_parser(
        "campus",
        help="HAProxy (deploy/haproxy.cfg) in front of three servers on this machine, "
        "sharing PostgreSQL and Redis (docs/operations.md)",
        description="Start three `tokenwheel serve` on 127.0.0.1 (FIRST_PORT and the next "
        "two) and HAProxy in front of them on 127.0.0.1:PORT, routing each session to one "
        "server. Needs TOKENWHEEL_DATABASE_URL on PostgreSQL and Redis "
        "(TOKENWHEEL_REDIS_URL, default redis://127.0.0.1:6379/0). Runs until Ctrl-C.",
    )
    campus.add_argument("--port", type=int, default=8080, help="HAProxy's port (8080)")
    campus.add_argument("--first-port", type=int, default=8001, help="the first server's (8001)")
    campus.add_argument("--access-log", action="store_true", help="servers log each request")
    campus.set_defaults(func=cmd_campus)
    bench = sub.add_parser("bench", help="naive vs ours: step latency, classroom over HTTP")
    bench.add_argument("--model", default="smollm2-135m")
    bench.add_argument("--students", type=int, default=30)
    bench.add_argument("--seconds", type=float, default=30.0)
    bench.add_argument("--repeats", type=int, default=7)
    bench.add_argument("--output", default="bench/results")
    bench.add_argument(
        "--think",
        type=_think,
        default=(1.0, 3.0),
        help="seconds each student looks at the wheel in the paced classroom (0: skip it)",
    )
    bench.set_defaults(func=cmd_bench)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("purge", help="expire idle sessions and purge old ones now").set_defaults(
        func=cmd_purge
    )
    sub.add_parser(
        "rebuild-index", help="rebuild session_index and the class tables from the event table"
    ).set_defaults(func=cmd_rebuild_index)
    export = sub.add_parser(
        "export-events",
        help="write the event table as CSV or JSON Lines (see docs/events.md)",
        description="Write the event table, oldest first, one line per event.",
    )
    export.add_argument("--since", type=_since, help="only events at or after this ISO date/time")
    export.add_argument(
        "--class", dest="class_code", type=_class_code, help="only sessions of this class code"
    )
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    export.set_defaults(func=cmd_export_events)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = _settings()
    _setup_logging(settings)
    return int(args.func(args, settings))
