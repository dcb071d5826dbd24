"""Reading docker-compose.yml and the Dockerfile as Docker would, without Docker.

:func:`interpolate` expands ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
``${VAR:?error}``, ``${VAR?error}``, ``${VAR:+alt}``, ``${VAR+alt}``, ``$VAR`` and ``$$`` as
the Compose specification says (checked against Docker Compose v2.40's ``config`` output
for the cases in ``tests/deploy/test_compose.py``). :func:`image_facts` reads the Dockerfile
instructions that decide who the worker runs as and what it may write. :func:`problems`
lists every way the stack would not work; the tests assert it is empty, and that it finds
each defect the stack once had.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import yaml

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


class InterpolationError(ValueError):
    """``${VAR:?message}`` with VAR unset, or a malformed ``${...}``."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "$":
            out.append(c)
            i += 1
        elif text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing(text, i + 2)
            out.append(_braced(text[i + 2 : end], env))
            i = end + 1
        elif m := re.compile(_NAME).match(text, i + 1):
            out.append(env.get(m.group(0), ""))
            i = m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _closing(text: str, start: int) -> int:
    depth = 1
    for j in range(start, len(text)):
        if text.startswith("${", j):
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    raise InterpolationError(f"unclosed ${{ in {text!r}")


def _braced(inner: str, env: Mapping[str, str]) -> str:
    m = re.fullmatch(rf"({_NAME})(?:(:?[-?+])(.*))?", inner, re.S)
    if m is None:
        raise InterpolationError(f"invalid interpolation ${{{inner}}}")
    name, op, arg = m.group(1), m.group(2), m.group(3) or ""
    value = env.get(name)
    set_ = value is not None
    nonempty = bool(value)
    if op is None:
        return value or ""
    present = nonempty if op.startswith(":") else set_
    kind = op[-1]
    if kind == "-":
        return value if present and value is not None else interpolate(arg, env)
    if kind == "+":
        return interpolate(arg, env) if present else ""
    if not present:  # "?"
        raise InterpolationError(f"{name}: {interpolate(arg, env) or 'required'}")
    return value or ""


def expand(node: Any, env: Mapping[str, str]) -> Any:
    """Every string of a parsed YAML document interpolated (keys too, as Compose does)."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [expand(v, env) for v in node]
    if isinstance(node, dict):
        return {expand(k, env): expand(v, env) for k, v in node.items()}
    return node


def load_compose(path: Path, env: Mapping[str, str]) -> dict[str, Any]:
    document: dict[str, Any] = expand(yaml.safe_load(path.read_text()), env)
    return document


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment`` (map or ``KEY=VALUE`` list form) as strings."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {k: "" if v is None else str(v) for k, v in raw.items()}


@dataclass
class Mount:
    source: str | None  # None: anonymous volume
    target: str
    kind: str  # "bind" | "volume"
    read_only: bool = False


def mounts_of(service: Mapping[str, Any]) -> list[Mount]:
    """Short-syntax volume strings and long-syntax mappings."""
    result = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            result.append(
                Mount(
                    entry.get("source"),
                    entry["target"],
                    entry.get("type", "volume"),
                    bool(entry.get("read_only")),
                )
            )
            continue
        parts = entry.split(":")
        if len(parts) == 1:
            result.append(Mount(None, parts[0], "volume"))
            continue
        source, target = parts[0], parts[1]
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        result.append(Mount(source, target, kind, len(parts) > 2 and "ro" in parts[2]))
    return result


@dataclass
class ImageFacts:
    """What the Dockerfile says about the running container."""

    base: str = ""
    user: str = "0"
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    owned: dict[str, str] = field(default_factory=dict)  # directory -> owner (uid or name)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)


def image_facts(dockerfile: str) -> ImageFacts:
    facts = ImageFacts()
    text = re.sub(r"\\\n", " ", dockerfile)
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            facts.base = rest.split()[0]
        elif op == "USER":
            facts.user = rest.split(":")[0].strip()
        elif op == "WORKDIR":
            facts.workdir = str(PurePosixPath(facts.workdir) / rest.strip())
        elif op == "ENV":
            for token in shlex.split(rest):
                key, _, value = token.partition("=")
                facts.env[key] = value
        elif op in ("ENTRYPOINT", "CMD"):
            value = yaml.safe_load(rest)
            setattr(facts, op.lower(), value if isinstance(value, list) else shlex.split(rest))
        elif op == "RUN":
            for command in re.split(r"&&|;", rest):
                words = shlex.split(command)
                if words[:2] == ["install", "-d"] and "-o" in words:
                    owner = words[words.index("-o") + 1]
                    dirs = [w for w in words[2:] if w.startswith("/")]
                    facts.owned.update(dict.fromkeys(dirs, owner))
                if words[:1] == ["chown"] and len(words) >= 3:
                    owner = words[-2].split(":")[0] if "-R" not in words[-2] else words[-3]
                    facts.owned[words[-1]] = owner.split(":")[0]
    return facts


def writable_by(facts: ImageFacts, path: PurePosixPath) -> bool:
    """Whether ``path`` (absolute) lies in a directory the image gives to its user."""
    return any(
        (path == PurePosixPath(d) or PurePosixPath(d) in path.parents) and owner == facts.user
        for d, owner in facts.owned.items()
    )


def _pinned(image: str) -> bool:
    tag = image.rpartition(":")[2] if ":" in image.split("/")[-1] else ""
    return bool(re.search(r"\d+\.\d+\.\d+", tag)) or "@sha256:" in image


def problems(
    root: Path, compose: Mapping[str, Any], dockerfile: str, *, worker: str = "worker"
) -> list[str]:
    """Everything that would stop the stack from working as its header says."""
    from streams.cli import _flags, build_parser
    from streams.config import load_settings

    found: list[str] = []
    services: Mapping[str, Any] = compose["services"]
    facts = image_facts(dockerfile)

    for name, svc in services.items():
        image = svc.get("image")
        if image and not _pinned(image):
            found.append(f"{name}: image {image!r} is not pinned to a version")
        for mount in mounts_of(svc):
            if mount.kind == "bind" and mount.source and not (root / mount.source).exists():
                found.append(f"{name}: mounted {mount.source} does not exist")
    if not _pinned(facts.base):
        found.append(f"Dockerfile: base image {facts.base!r} is not pinned")
    if facts.user in ("0", "root"):
        found.append("Dockerfile: the worker runs as root")

    # Kafka keeps its log in its volume.
    kafka = services["kafka"]
    kafka_env = environment_of(kafka)
    volume_targets = {m.target for m in mounts_of(kafka) if m.kind == "volume" and m.source}
    if kafka_env.get("KAFKA_LOG_DIRS") not in volume_targets:
        found.append(
            f"kafka: KAFKA_LOG_DIRS={kafka_env.get('KAFKA_LOG_DIRS')!r} is not its volume "
            f"({sorted(volume_targets)})"
        )

    # The worker's configuration, loaded exactly as the container would.
    svc = services[worker]
    env = {**facts.env, **environment_of(svc)}
    command = svc.get("command") or facts.cmd
    args = build_parser().parse_args(command[1:])
    config = args.config
    binds = {m.target: m.source for m in mounts_of(svc) if m.kind == "bind" and m.source}
    if config is not None:
        host = binds.get(str(config))
        if host is None:
            found.append(f"{worker}: config {config} is not mounted")
            return found
        config = root / host
    try:
        settings = load_settings(config, environ=env, flags=_flags(args))
    except Exception as exc:  # any refusal is a worker that would not start
        found.append(f"{worker}: the worker would not start: {exc}")
        return found

    ch = services["clickhouse"]
    ch_env = environment_of(ch)
    dsn = urlsplit(settings.clickhouse.dsn)
    if settings.clickhouse.is_chdb or dsn.hostname != "clickhouse" or dsn.port != 8123:
        found.append(
            f"{worker}: ClickHouse DSN {settings.clickhouse.redacted_dsn} is not the server"
        )
    else:
        if (dsn.username, dsn.password) != (
            ch_env.get("CLICKHOUSE_USER"),
            ch_env.get("CLICKHOUSE_PASSWORD"),
        ):
            found.append(f"{worker}: ClickHouse user/password differ from the server's")
        if settings.clickhouse.database != ch_env.get("CLICKHOUSE_DB"):
            found.append(f"{worker}: database {settings.clickhouse.database!r} is not the server's")

    advertised = {
        listener.split("://", 1)[1]
        for listener in kafka_env.get("KAFKA_ADVERTISED_LISTENERS", "").split(",")
    }
    for address in settings.kafka.bootstrap_servers.split(","):
        if address not in advertised or address.split(":")[0] not in services:
            found.append(f"{worker}: Kafka bootstrap {address} is not the broker's listener")

    workdir = PurePosixPath(facts.workdir)
    writes = {
        "state dir": workdir / settings.worker.state_dir,
        "Faust data dir": workdir / "spendwatch-data",
    }
    if settings.clickhouse.chdb_path is not None:
        location = settings.clickhouse.dsn.split("://", 1)[1]
        writes["chDB path"] = workdir / (location[1:] if location.startswith("/.") else location)
    for what, path in writes.items():
        if not writable_by(facts, path):
            found.append(f"{worker}: {what} {path} is not writable for user {facts.user}")

    replicas = int((svc.get("deploy") or {}).get("replicas", 1))
    if replicas < 2:
        found.append(f"{worker}: replicas {replicas}: the header promises several workers")
    if "container_name" in svc or svc.get("ports"):
        found.append(f"{worker}: container_name or host ports stop replicas from starting")
    if settings.kafka.partitions < replicas:
        found.append(f"{worker}: {settings.kafka.partitions} partitions for {replicas} workers")
    state = workdir / settings.worker.state_dir
    for mount in mounts_of(svc):
        if PurePosixPath(mount.target) == state and mount.source is not None:
            found.append(f"{worker}: replicas would share {state} ({mount.source})")
    return found
