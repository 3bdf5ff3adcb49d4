"""WSGI entry point (gunicorn): REST API, admin and pages."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SCOREBOARD_SERVER_ROLE", "wsgi")

from core.bodies import SizedBodyWSGI

# A chunked body is read (up to the size limit) and given its Content-Length.
application = SizedBodyWSGI(get_wsgi_application())

# Before gunicorn forks its workers (preload_app): a worker's first request imports
# nothing, and the collector's passes skip what was loaded (config/warmup.py).
from config.warmup import freeze_loaded, import_request_code  # noqa: E402

import_request_code()
freeze_loaded()
