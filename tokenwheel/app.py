"""The composition root: settings -> engine, store, models, service -> Flask app."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from flask import Flask, send_from_directory
from werkzeug.middleware.proxy_fix import ProxyFix

from .api import classes as classes_api
from .api import health as health_api
from .api import lab as lab_api
from .api import live as live_api  # adds the live route to the teacher blueprint
from .api import models as models_api
from .api import rounds as rounds_api
from .api import scoring as scoring_api
from .api import sessions as sessions_api
from .api import teacher as teacher_api
from .api.errors import TokenWheelApi, register_error_handlers
from .api.headers import init_cors, init_security_headers
from .api.json_reader import JsonProvider
from .api.limits import init_limits
from .api.requests import init_body_reading, init_json_bodies, init_request_ids
from .domain.rules import LIVE_FALLBACK_SECONDS, LIVE_POLL_SECONDS
from .inference.catalog import spec_from_mapping
from .inference.types import InferenceOptions
from .redaction import install_redaction
from .services import (
    Classroom,
    Lab,
    LanguageModels,
    LiveFeeds,
    Maintenance,
    Rounds,
    StudentSessions,
    Teaching,
    TextScoring,
)
from .settings import Settings
from .store.class_rebuild import SqlClassRebuild
from .store.classes import SqlClassStore
from .store.database import is_sqlite, make_engine
from .store.feed import SqlClassFeed
from .store.sql import SqlEventStore
from .store.wakeups import PgNotifyWakeups, PollingWakeups

log = logging.getLogger(__name__)

DOCS_ASSETS = "/api/docs-assets/"


def inference_options(settings: Settings) -> InferenceOptions:
    return InferenceOptions(
        cache_dir=str(settings.cache_dir),
        offline=settings.offline,
        hub_timeout=settings.hub_timeout,
        torch_threads=settings.torch_threads,
        default_model=settings.default_model,
        max_context=settings.max_context,
        extra_models=tuple(spec_from_mapping(m) for m in settings.extra_models),
        dtype=settings.dtype,
        memory_budget_bytes=settings.model_memory_budget,
        engine=settings.engine,
        kv_cache_bytes=settings.kv_cache_bytes,
        logits_cache_bytes=settings.logits_cache_bytes,
        max_batch=settings.max_batch,
        max_queue=settings.model_queue,
        inference_process=settings.inference == "process",
        quantized_models=settings.quantized_models,
    )


def create_app(
    settings: Settings | None = None,
    *,
    models: LanguageModels | None = None,
    start_scheduler: bool | None = None,
    warm_up: bool = False,
) -> Flask:
    """Build the app. Nothing here loads a model or starts a thread before it is needed,
    except the purge scheduler when enabled and, with ``warm_up`` (servers), a thread that
    loads the default model; both run after a server forks, per worker."""
    settings = settings or Settings.from_env()
    # tokenwheel/web/ holds the pages as plain static files; they talk to the REST API only
    app = Flask(
        __name__,
        instance_path=str(settings.instance_path),
        static_folder="web",
        static_url_path="/static",
    )
    # "/api/sessions//undo" (an empty session id) is a JSON 404, not an HTML redirect to
    # a URL with the slashes merged
    app.url_map.merge_slashes = False
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.update(
        API_TITLE="Token Wheel",
        API_VERSION="1",
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {
                "description": (
                    "Token Wheel shows a language model's next-token distribution as a wheel. "
                    "Every error body is JSON with `error` and `message`."
                )
            }
        },
    )
    # one reader of JSON bodies for Flask and the schemas alike (api/json_reader.py)
    app.json = JsonProvider(app)

    engine = make_engine(settings.database_url)
    store = SqlEventStore(engine)
    classes = SqlClassStore(engine)
    if models is None:
        # imported here: torch loads only in processes that serve a real model
        from .inference.registry import ModelRegistry

        registry = ModelRegistry(inference_options(settings))
        if settings.preload:
            # after the fork (create_app runs in each worker), in the background so the
            # worker answers /api/health at once; /api/ready waits for the default model
            threading.Thread(
                target=registry.preload,
                args=(settings.preload,),
                name="tokenwheel-preload",
                daemon=True,
            ).start()
        models = registry
    maintenance = Maintenance(
        store, models, settings, classes=classes, class_rebuild=SqlClassRebuild(engine)
    )
    app.extensions["tokenwheel.settings"] = settings
    app.extensions["tokenwheel.engine"] = engine
    sessions = StudentSessions(store, models, settings)
    app.extensions["tokenwheel.sessions"] = sessions
    app.extensions["tokenwheel.teaching"] = Teaching(store, models, settings)
    app.extensions["tokenwheel.lab"] = Lab(store, models, settings, repository=sessions.repository)
    app.extensions["tokenwheel.scoring"] = TextScoring(models, settings)
    app.extensions["tokenwheel.classroom"] = Classroom(store, classes, models, settings, sessions)
    app.extensions["tokenwheel.rounds"] = Rounds(
        store, classes, models, settings, repository=sessions.repository
    )
    app.extensions["tokenwheel.maintenance"] = maintenance
    # live class streams read the table; PostgreSQL wakes them with NOTIFY, SQLite polls
    wakeups = (
        PollingWakeups(LIVE_POLL_SECONDS)
        if is_sqlite(engine)
        else PgNotifyWakeups(engine, LIVE_FALLBACK_SECONDS)
    )
    app.extensions["tokenwheel.live"] = LiveFeeds(
        store, SqlClassFeed(engine), wakeups, models, settings
    )
    app.extensions["tokenwheel.live_slots"] = live_api.StreamSlots(settings.live_max_streams)
    app.extensions["tokenwheel.models"] = models

    install_redaction()
    init_request_ids(app)
    api = TokenWheelApi(app)
    api.register_blueprint(sessions_api.blp)
    api.register_blueprint(lab_api.blp)
    api.register_blueprint(scoring_api.blp)
    api.register_blueprint(models_api.blp)
    teacher_api.register(api)
    api.register_blueprint(classes_api.blp)
    api.register_blueprint(rounds_api.blp)
    api.register_blueprint(health_api.blp)
    register_error_handlers(app)
    _serve_docs(app)
    _serve_pages(app)
    app.extensions["tokenwheel.limiter"] = init_limits(app, settings)
    init_json_bodies(app)
    init_body_reading(app, settings.max_body_bytes)
    init_security_headers(app)
    init_cors(app, settings)
    if settings.trusted_proxies:
        # Behind N reverse proxies the client is the Nth address from the right of
        # X-Forwarded-For; without this every client would be the proxy.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    if warm_up:
        threading.Thread(target=maintenance.warm_up, name="tokenwheel-warm-up", daemon=True).start()

    if start_scheduler if start_scheduler is not None else settings.scheduler_enabled:
        from .jobs import start_purge_scheduler

        app.extensions["tokenwheel.scheduler"] = start_purge_scheduler(
            maintenance, engine, settings
        )
    return app


def _serve_pages(app: Flask) -> None:
    """The student page at ``/``, the teacher page at ``/teacher`` (its projector view at
    ``/teacher/projector``) and the lab at
    ``/lab``; their scripts and styles come from ``/static/``. The teacher page itself
    holds no data: everything it shows comes from the teacher API, behind the token. The
    lab uses the student API (two sessions side by side) and ``POST /api/score``."""

    @app.get("/")
    def student_page() -> Any:
        return app.send_static_file("index.html")

    @app.get("/teacher")
    def teacher_page() -> Any:
        return app.send_static_file("teacher.html")

    @app.get("/teacher/projector")
    def projector_page() -> Any:
        # the projector view of a class (?class=CODE): read-only, from the teacher API
        return app.send_static_file("projector.html")

    @app.get("/lab")
    def lab_page() -> Any:
        return app.send_static_file("lab.html")


def _serve_docs(app: Flask) -> None:
    """Swagger UI 5 (it reads OpenAPI 3.1) at ``/api/docs``, from the files of the
    flask-swagger-ui package: the docs work with no internet. The page is ours
    (``web/docs.html`` and ``web/docs.js``), with no inline script, so it is served under
    the same Content-Security-Policy as every other page."""
    import flask_swagger_ui

    folder = Path(flask_swagger_ui.__file__).parent / "dist"

    @app.get("/api/docs")
    def api_docs() -> Any:
        return app.send_static_file("docs.html")

    @app.get(DOCS_ASSETS + "<path:filename>")
    def docs_assets(filename: str) -> Any:
        return send_from_directory(folder, filename)
