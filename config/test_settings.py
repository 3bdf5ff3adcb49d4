"""Settings for the test suite: the real stack, on services of the local machine.

Every run gets a database and a Redis key prefix of its own, so runs from several
checkouts can share one PostgreSQL and one Redis.
"""

import os
import uuid

RUN_ID = os.environ.setdefault("SCOREBOARD_TEST_RUN_ID", uuid.uuid4().hex[:10])
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/scoreboard")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("REDIS_KEY_PREFIX", f"sbtest-{RUN_ID}")
os.environ.setdefault("SECRET_KEY", f"test-secret-{uuid.uuid4().hex}{uuid.uuid4().hex}")
os.environ.setdefault("JWT_SIGNING_KEY", f"test-jwt-{uuid.uuid4().hex}{uuid.uuid4().hex}")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
# Creating and dropping a test database waits for a checkpoint, seconds on a busy machine:
# more than the production statement timeout. Only for this process: the stacks that
# tests start (they inherit the environment) keep the production default.
_STATEMENT_TIMEOUT_SET = "DB_STATEMENT_TIMEOUT_MS" not in os.environ
os.environ.setdefault("DB_STATEMENT_TIMEOUT_MS", "60000")
os.environ["SCOREBOARD_READ_DOT_ENV"] = "0"

from config.settings import *  # noqa: E402, F403
from config.settings import DATABASES  # noqa: E402

if _STATEMENT_TIMEOUT_SET:
    del os.environ["DB_STATEMENT_TIMEOUT_MS"]

DATABASES["default"]["TEST"] = {"NAME": f"test_scoreboard_{RUN_ID}"}
