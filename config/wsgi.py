"""WSGI entry point (gunicorn): REST API, admin and pages."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SCOREBOARD_SERVER_ROLE", "wsgi")

application = get_wsgi_application()

# Before gunicorn forks its workers (preload_app): a worker's first request imports
# nothing (scoreboard/warmup.py).
from scoreboard.warmup import import_request_code  # noqa: E402

import_request_code()
