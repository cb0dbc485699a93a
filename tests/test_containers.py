"""What reading the compose file and the Dockerfiles can check: commands name real modules,
every variable is a real setting, the stack's promises hold. Running them is the stack test's
job (tests/integration/test_compose_stack.py), and tests/test_compose_processes.py runs each
service's command and environment as a plain process."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
# Variables read by libraries rather than by Settings.
THIRD_PARTY_VARIABLES = {"CREWAI_STORAGE_DIR"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


@pytest.mark.parametrize("service", ["redis", "broker"])
def test_redis_is_durable_and_never_evicts(compose: dict[str, Any], service: str) -> None:
    redis = compose["services"][service]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert "redis-cli" in " ".join(redis["healthcheck"]["test"])
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_the_session_store_is_bounded_and_the_broker_apart(compose: dict[str, Any]) -> None:
    # A full session store must not stop task traffic (issue 17): separate servers.
    store_command = " ".join(compose["services"]["redis"]["command"])
    assert "--maxmemory ${REDIS_MAXMEMORY:-1gb}" in store_command
    for name in ("api", "worker"):
        environment = compose["services"][name]["environment"]
        assert environment["REDIS_URL"].startswith("redis://redis:")
        assert environment["CELERY_BROKER_URL"].startswith("redis://broker:")


def test_gateway_waits_for_healthy_redis_and_workers_scale(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("api", "worker"):
        for dependency in ("redis", "broker"):
            assert services[name]["depends_on"][dependency]["condition"] == "service_healthy"
    # A fixed container name would make `--scale worker=N` fail.
    assert "container_name" not in services["worker"]
    assert "ports" not in services["worker"]


def _import_target(module: str, attribute: str) -> object:
    return getattr(importlib.import_module(module), attribute)


def test_only_the_proxy_is_published_and_it_fronts_the_gateway(compose: dict[str, Any]) -> None:
    services = compose["services"]
    published = [
        name for name, spec in services.items() if "ports" in spec and "profiles" not in spec
    ]
    assert published == ["proxy"]
    # The opt-in observability profile publishes on this host only.
    for name, spec in services.items():
        if "profiles" in spec:
            assert all(port.startswith("127.0.0.1:") for port in spec.get("ports", [])), name
    assert services["proxy"]["ports"] == ["${PORTALS_HTTP_PORT:-8000}:8080"]
    nginx = (ROOT / "docker" / "nginx.conf").read_text()
    assert "listen 8080;" in nginx and "server api:8000;" in nginx
    assert "8000" in services["api"]["expose"]
    api_command = services["api"]["command"]
    # The gateway trusts X-Forwarded-For because only the proxy reaches it, and the proxy
    # overwrites what a client claims.
    assert "--proxy-headers" in api_command and "--forwarded-allow-ips=*" in api_command
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in nginx


def test_commands_point_at_real_modules(compose: dict[str, Any]) -> None:
    api_command = compose["services"]["api"]["command"]
    assert api_command[0] == "uvicorn"
    module, _, attribute = api_command[1].partition(":")
    assert _import_target(module, attribute) is not None
    worker_command = compose["services"]["worker"]["command"]
    assert worker_command[:2] == ["celery", "-A"]
    celery_app = _import_target(worker_command[2], "app")
    assert type(celery_app).__name__ == "Celery"
    for dockerfile in ("Dockerfile.api", "Dockerfile.worker"):
        cmd = re.search(r"^CMD \[(.*)\]$", (ROOT / dockerfile).read_text(), re.M)
        assert cmd is not None
        words = [w.strip().strip('"') for w in cmd.group(1).split(",")]
        expected = api_command if dockerfile.endswith("api") else worker_command
        assert words[:3] == expected[:3]


def _with_defaults(value: object) -> str:
    """A value as compose reads it when the operator sets none of its ${VAR:-default}s."""
    return re.sub(r"\$\{\w+:?-([^}]*)\}", r"\1", str(value))


def test_every_environment_variable_is_a_real_setting(compose: dict[str, Any]) -> None:
    known = {name.upper() for name in Settings.model_fields} | THIRD_PARTY_VARIABLES
    for name in ("api", "worker"):
        variables = set(compose["services"][name]["environment"])
        assert variables <= known, variables - known
        settings = Settings(
            **{  # type: ignore[arg-type]
                k.lower(): _with_defaults(v)
                for k, v in compose["services"][name]["environment"].items()
                if k.lower() in Settings.model_fields
            }
        )
        assert settings.session_backend == "redis" and not settings.celery_task_always_eager


@pytest.mark.parametrize("dockerfile", ["Dockerfile.api", "Dockerfile.worker"])
def test_images_are_slim_non_root_and_cache_dependencies(dockerfile: str) -> None:
    text = (ROOT / dockerfile).read_text()
    assert re.search(r"^FROM python:3\.1[1-9]-slim", text, re.M)
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1] not in {"root", "0"}
    # Dependencies are installed before the source is copied, so code edits reuse that layer.
    assert text.index("pip install -c constraints.txt") < text.index("COPY shared")
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        for copied in line.split()[:-1]:
            assert (ROOT / copied).exists(), copied


def test_gateway_image_leaves_crewai_out() -> None:
    assert "--without crewai" in (ROOT / "Dockerfile.api").read_text()
    assert "--without" not in (ROOT / "Dockerfile.worker").read_text()
