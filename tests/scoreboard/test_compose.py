"""docker-compose.yml describes the real stack, and every command it names exists here."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_it_describes_every_role(compose: dict) -> None:
    assert {"postgres", "redis", "web", "ws", "worker", "beat", "nginx"} <= set(compose["services"])
    assert compose["services"]["web"]["deploy"]["replicas"] == 2
    assert compose["services"]["ws"]["deploy"]["replicas"] == 2


def test_it_gives_every_service_a_health_check(compose: dict) -> None:
    for name, service in compose["services"].items():
        if name == "migrate":
            continue
        assert "healthcheck" in service, name


def test_it_reads_app_settings_from_dot_env(compose: dict) -> None:
    for name in ("web", "ws", "worker", "beat"):
        assert compose["services"][name]["env_file"] == ".env"
        environment = compose["services"][name]["environment"]
        assert {"DATABASE_URL", "REDIS_URL"} <= set(environment)


def _check_command(command: list[str]) -> None:
    program, *args = command
    if program == "python":
        assert args[0] == "manage.py"
        assert (ROOT / "manage.py").is_file()
        return
    assert (VENV_BIN / program).is_file(), f"{program} is not installed by the lock file"
    if program in ("gunicorn", "daphne"):
        target = next(arg for arg in args if re.fullmatch(r"[\w.]+:\w+", arg))
        module, attr = target.split(":")
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file()
        assert attr == "application"
        if "-c" in args:
            assert (ROOT / args[args.index("-c") + 1]).is_file()
    if program == "celery":
        app_module = args[args.index("-A") + 1]
        assert hasattr(importlib.import_module(app_module), "celery_app")
        assert args[args.index("-A") + 2] in ("worker", "beat", "inspect")


def test_it_names_only_commands_the_project_has(compose: dict) -> None:
    app_services = [s for s in compose["services"].values() if "build" in s or s.get("<<")]
    assert app_services
    for service in compose["services"].values():
        if service.get("image", "").startswith("scoreboard") and "command" in service:
            _check_command(service["command"])
        healthcheck = service.get("healthcheck", {}).get("test", [])
        if healthcheck[:2] == ["CMD", "celery"]:
            _check_command(healthcheck[1:])


def test_it_ships_an_nginx_config_that_upgrades_websockets(compose: dict) -> None:
    volumes = compose["services"]["nginx"]["volumes"]
    assert all((ROOT / volume.split(":")[0]).is_file() for volume in volumes)
    config = "\n".join((ROOT / volume.split(":")[0]).read_text() for volume in volumes)
    assert "include /etc/nginx/scoreboard-locations.conf" in config
    ws_block = config[config.index("location /ws/") :]
    ws_block = ws_block[: ws_block.index("}")]
    assert "proxy_pass http://ws" in ws_block
    assert "proxy_set_header Upgrade $http_upgrade" in ws_block
    assert "proxy_set_header Connection $connection_upgrade" in ws_block
    assert "proxy_pass http://web" in config
    assert "server web:8000" in config
    assert "server ws:8001" in config


def test_it_builds_from_the_lock_file() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "uv sync --frozen" in dockerfile
    assert (ROOT / "uv.lock").is_file()


def test_it_migrates_before_serving(compose: dict) -> None:
    assert compose["services"]["migrate"]["command"][-2:] == ["bootstrap", "--no-demo"]
    for name in ("web", "ws", "worker", "beat"):
        depends = compose["services"][name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
