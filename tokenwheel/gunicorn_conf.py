"""gunicorn settings for running ``wsgi:app`` directly:
``gunicorn -c python:tokenwheel.gunicorn_conf wsgi:app`` (``tokenwheel serve`` sets the
same ones, from here, with its own bind, workers and threads). Threads, not forked model
copies, JSON (with the app's security headers) even where gunicorn answers before the
app, and no session id in any log line."""

from tokenwheel.redaction import redacting_gunicorn_logger

# gthread, answering the requests gunicorn refuses itself in JSON (not HTML pages)
worker_class = "tokenwheel.gunicorn_worker.JsonErrorThreadWorker"
threads = 16
workers = 1
timeout = 300
graceful_timeout = 10
preload_app = False  # the app, its models and its inference process start after the fork
logger_class = redacting_gunicorn_logger()
