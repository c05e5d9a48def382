"""WSGI entry point: ``gunicorn wsgi:app`` (run ``tokenwheel migrate`` first)."""

from tokenwheel import create_app

app = create_app(warm_up=True)
