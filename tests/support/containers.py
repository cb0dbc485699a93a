"""A real container engine for the stack test, with nothing pulled from a registry.

The engine is Debian's podman (runc, cgroupfs, netavark for service-name DNS) and
podman-compose from PyPI (Debian's 1.0.3 ignores `--scale`). The base images the project's
files name (`python:3.11-slim`, `redis:7-alpine`, `nginx:1.27-alpine`) are built from Debian
packages with mmdebstrap and imported under those names, so `FROM` and `image:` resolve
locally. They are Debian's Python, Redis and nginx, not the upstream images: right for proving
the Dockerfiles, the compose file, its commands, environment, scaling and shutdown.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BASE_IMAGES",
    "ComposeStack",
    "Podman",
    "engine_missing",
    "engine_unsupported",
    "ensure_base_images",
]

_APT_SOURCES = Path("/etc/apt")


@dataclass(frozen=True)
class BaseImage:
    name: str
    packages: tuple[str, ...]
    hooks: tuple[str, ...]
    changes: tuple[str, ...]


# Trusting the machine's own added CAs (a TLS-inspecting proxy in front of PyPI, say) inside
# the image, as its pip must; then a venv at /usr/local puts `python` and `pip` on PATH as in
# the upstream image.
_PYTHON_HOOKS = (
    'for c in /usr/local/share/ca-certificates/*.crt; do [ -e "$c" ] && '
    'cp "$c" "$1/usr/local/share/ca-certificates/"; done; '
    'chroot "$1" update-ca-certificates >/dev/null 2>&1',
    'chroot "$1" python3 -m venv /usr/local',
)
# Debian's redis-server refuses clients from other containers in protected mode; the upstream
# image works in /data.
_REDIS_ENTRYPOINT = """#!/bin/sh
if [ "${1#-}" != "$1" ]; then set -- redis-server "$@"; fi
if [ "$1" = redis-server ]; then set -- "$@" --protected-mode no; fi
exec "$@"
"""
_REDIS_HOOKS = (
    "cat > \"$1/usr/local/bin/docker-entrypoint.sh\" <<'EOF'\n" + _REDIS_ENTRYPOINT + "EOF\n"
    'chmod 755 "$1/usr/local/bin/docker-entrypoint.sh"; mkdir -p "$1/data"',
)
_LABEL = "LABEL org.pocketportals.base=debian"
BASE_IMAGES = (
    BaseImage(
        "docker.io/library/python:3.11-slim",
        ("python3", "python3-venv", "ca-certificates"),
        _PYTHON_HOOKS,
        (_LABEL, 'CMD ["python3"]'),
    ),
    BaseImage(
        # The upstream image's busybox has wget, which the compose healthcheck uses.
        "docker.io/library/nginx:1.27-alpine",
        ("nginx", "wget"),
        (),
        (_LABEL, 'CMD ["nginx", "-g", "daemon off;"]', "STOPSIGNAL SIGQUIT"),
    ),
    BaseImage(
        # docker-compose.yml's observability profile; Debian's Prometheus (2.42, not 2.53), with
        # the upstream image's entrypoint, arguments and working directory.
        "docker.io/prom/prometheus:v2.53.0",
        ("prometheus",),
        ('mkdir -p "$1/prometheus"; chmod 777 "$1/prometheus"',),
        (
            _LABEL,
            'ENTRYPOINT ["/usr/bin/prometheus"]',
            'CMD ["--config.file=/etc/prometheus/prometheus.yml", '
            '"--storage.tsdb.path=/prometheus"]',
            "WORKDIR /prometheus",
        ),
    ),
    BaseImage(
        "docker.io/library/redis:7-alpine",
        ("redis-server", "redis-tools"),
        _REDIS_HOOKS,
        (
            _LABEL,
            'ENTRYPOINT ["docker-entrypoint.sh"]',
            'CMD ["redis-server"]',
            "WORKDIR /data",
        ),
    ),
)


def engine_unsupported() -> str | None:
    """Why no engine can run on this machine at all (the test then skips), or None."""
    if sys.platform != "linux":
        return "the stack test runs podman, which needs Linux"
    if os.geteuid() != 0:
        return "the stack test runs podman as root (rootless podman needs subuid setup)"
    if not Path("/etc/debian_version").exists() or shutil.which("apt-get") is None:
        return "the stack test builds its base images from Debian packages: not a Debian system"
    return None


def engine_missing() -> str | None:
    """What the test command should have installed but did not, or None."""
    missing = [
        tool
        for tool in ("podman", "runc", "mmdebstrap", "netavark", "aardvark-dns")
        if shutil.which(tool) is None and not Path(f"/usr/lib/podman/{tool}").exists()
    ]
    if shutil.which("podman-compose", path=str(Path(sys.executable).parent)) is None:
        missing.append("podman-compose (the test extra)")
    return ", ".join(missing) or None


class Podman:
    """podman with a containers.conf of the test's own (CONTAINERS_CONF): runc, cgroupfs, no
    systemd events, netavark, and ulimits this unprivileged-for-limits process may grant."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        if nproc == resource.RLIM_INFINITY or nproc > 32768:
            nproc = 32768
        if nofile == resource.RLIM_INFINITY:
            nofile = 1 << 20
        config = workdir / "containers.conf"
        config.write_text(
            "[containers]\n"
            f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
            "[engine]\n"
            'runtime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
            "[network]\n"
            'network_backend = "netavark"\n'
        )
        self.env = {**os.environ, "CONTAINERS_CONF": str(config)}

    def run(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["podman", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done

    def image_exists(self, name: str) -> bool:
        return self.run("image", "exists", name, check=False).returncode == 0


def ensure_base_images(podman: Podman, workdir: Path) -> list[str]:
    """Build the base images that are not there yet (in parallel); the names built."""
    missing = [image for image in BASE_IMAGES if not podman.image_exists(image.name)]
    if not missing:
        return []
    sources = _debian_sources(workdir)
    with ThreadPoolExecutor(len(missing)) as pool:
        list(pool.map(lambda image: _build_base(podman, image, workdir, sources), missing))
    return [image.name for image in missing]


def _build_base(podman: Podman, image: BaseImage, workdir: Path, sources: Path | None) -> None:
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        tarball = Path(scratch) / "rootfs.tar"
        command = [
            "mmdebstrap",
            "--variant=minbase",
            "--quiet",
            f"--include={','.join(image.packages)}",
            *(f"--customize-hook={hook}" for hook in image.hooks),
            _codename(),
            str(tarball),
        ]
        if sources is not None:
            command.append(str(sources))
        built = subprocess.run(command, capture_output=True, text=True, timeout=900)
        if built.returncode != 0:
            raise RuntimeError(f"mmdebstrap for {image.name} failed:\n{built.stderr[-3000:]}")
        changes = [arg for change in image.changes for arg in ("--change", change)]
        podman.run("import", *changes, str(tarball), image.name, timeout=300)


def _codename() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.partition("=")[2].strip('"')
    raise RuntimeError("/etc/os-release names no VERSION_CODENAME")


def _debian_sources(workdir: Path) -> Path | None:
    """The machine's own apt entries for its release (and its -updates and -security), so
    the images come from the mirror this machine is set up to use; None lets mmdebstrap
    choose its default mirror."""
    codename = _codename()
    suites = {codename, f"{codename}-updates", f"{codename}-security"}
    stanzas = []
    for path in sorted(_APT_SOURCES.glob("sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields = dict(
                (key.strip().lower(), value.strip())
                for key, _, value in (line.partition(":") for line in stanza.splitlines())
                if value and not key.startswith((" ", "#"))
            )
            if (
                suites & set(fields.get("suites", "").split())
                and "deb" in fields.get("types", "").split()
            ):
                stanzas.append(stanza.strip())
    lines = []
    for path in [_APT_SOURCES / "sources.list", *_APT_SOURCES.glob("sources.list.d/*.list")]:
        if path.exists():
            for line in path.read_text().splitlines():
                words = re.sub(r"\[[^]]*\]", "", line).split()
                if len(words) >= 3 and words[0] == "deb" and words[2] in suites:
                    lines.append(line.strip())
    if not stanzas and not lines:
        return None
    if stanzas:
        target = workdir / "debian.sources"
        target.write_text("\n\n".join(stanzas) + "\n")
    else:
        target = workdir / "debian.list"
        target.write_text("\n".join(lines) + "\n")
    return target


class ComposeStack:
    """The project's docker-compose.yml, unchanged, run by podman-compose under a project
    name of the test's own. Values for the file's `${VAR:-default}` placeholders come from
    `variables` (the way an operator sets them: in the environment of `compose up`)."""

    def __init__(
        self, podman: Podman, compose_file: Path, project: str, variables: dict[str, str]
    ) -> None:
        self.podman = podman
        self.compose_file = compose_file
        self.project = project
        self.env = {**podman.env, **variables}
        self.compose = str(Path(sys.executable).parent / "podman-compose")

    def compose_run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.compose, "-p", self.project, "-f", str(self.compose_file), *args],
            cwd=self.compose_file.parent,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"podman-compose {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def containers(self, service: str | None = None) -> list[dict[str, Any]]:
        """This project's containers (running or not), in name order."""
        filters = ["--filter", f"label=io.podman.compose.project={self.project}"]
        if service is not None:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        listed = self.podman.run("ps", "-a", *filters, "--format", "json").stdout
        found: list[dict[str, Any]] = json.loads(listed or "[]")
        return sorted(found, key=lambda container: str(container["Names"][0]))

    def names(self, service: str) -> list[str]:
        return [str(container["Names"][0]) for container in self.containers(service)]

    def inspect(self, name: str) -> dict[str, Any]:
        described: list[dict[str, Any]] = json.loads(self.podman.run("inspect", name).stdout)
        return described[0]

    def logs(self, name: str) -> str:
        done = self.podman.run("logs", name, check=False)
        return done.stdout + done.stderr

    def stop(self, names: list[str], grace: float) -> None:
        """SIGTERM each at once (the image's STOPSIGNAL), SIGKILL after `grace` seconds."""
        if names:
            self.podman.run("stop", "-t", str(int(grace)), *names, timeout=grace + 60)

    def remove(self) -> None:
        """Everything the project made: containers, pod, network and volumes (podman-compose
        `down` misses scaled replicas, so by label)."""
        ids = [str(container["Id"]) for container in self.containers()]
        if ids:
            self.podman.run("rm", "-f", "-t", "0", *ids, check=False, timeout=180)
        self.podman.run("pod", "rm", "-f", f"pod_{self.project}", check=False)
        volumes = self.podman.run(
            "volume", "ls", "-q", "--filter", f"label=io.podman.compose.project={self.project}"
        ).stdout.split()
        if volumes:
            self.podman.run("volume", "rm", "-f", *volumes, check=False)
        self.podman.run("network", "rm", "-f", f"{self.project}_default", check=False)
