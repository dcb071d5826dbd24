"""docker-compose.yml and the Dockerfile, read as Docker would (no engine here): the
environment each service gets, the worker's configuration loaded exactly as its container
loads it, who may write where, what is mounted, what is pinned; and proof that these checks
catch each defect the stack once shipped with (issue 15)."""

from __future__ import annotations

import json
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.support.compose import (
    InterpolationError,
    environment_of,
    image_facts,
    interpolate,
    load_compose,
    problems,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = (ROOT / "Dockerfile").read_text()
# A user who sets nothing: every ${VAR:-default} takes its default, optional secrets are empty.
BARE: dict[str, str] = {}


def stack(env: dict[str, str] | None = None) -> dict[str, Any]:
    return load_compose(COMPOSE, BARE if env is None else env)


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [  # each checked against `docker compose config` (Compose v2.40.3)
        ("${A:-d}", {}, "d"),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A-d}", {"A": ""}, ""),
        ("${A-d}", {}, "d"),
        ("${A:+x}", {"A": "1"}, "x"),
        ("${A:+x}", {"A": ""}, ""),
        ("${A+x}", {"A": ""}, "x"),
        ("$A/${B}", {"A": "a", "B": "b"}, "a/b"),
        ("cost $$5", {}, "cost $5"),
        ("${A:-${B:-z}}", {}, "z"),
        ("http://u:${P:-change-me}@h:8123/db", {}, "http://u:change-me@h:8123/db"),
    ],
)
def test_interpolation_follows_compose(text: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(text, env) == expected


def test_required_variable_is_an_error() -> None:
    with pytest.raises(InterpolationError, match="A: set it"):
        interpolate("${A:?set it}", {"A": ""})
    assert interpolate("${A:?set it}", {"A": "x"}) == "x"


def test_the_shipped_stack_has_no_problem() -> None:
    assert problems(ROOT, stack(), DOCKERFILE) == []


def test_the_shipped_stack_with_every_option_set() -> None:
    env = {
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x",
        "CLICKHOUSE_PASSWORD": "s3",
    }
    assert problems(ROOT, stack(env), DOCKERFILE) == []
    worker = environment_of(stack(env)["services"]["worker"])
    assert worker["SPENDWATCH_CLICKHOUSE_DSN"] == "http://spendwatch:s3@clickhouse:8123/spendwatch"


def test_the_worker_settings_as_the_container_loads_them() -> None:
    """The figures the checks rely on, computed by hand from the two files."""
    from streams.cli import _flags, build_parser
    from streams.config import load_settings

    services = stack()["services"]
    facts = image_facts(DOCKERFILE)
    assert (facts.user, facts.workdir) == ("10001", "/var/lib/spendwatch")
    assert facts.owned == {"/var/lib/spendwatch": "10001"}
    env = {**facts.env, **environment_of(services["worker"])}
    args = build_parser().parse_args(services["worker"]["command"][1:])
    settings = load_settings(ROOT / "deploy/spendwatch.toml", environ=env, flags=_flags(args))
    assert settings.clickhouse.dsn == "http://spendwatch:change-me@clickhouse:8123/spendwatch"
    assert settings.origins["clickhouse.dsn"] == "$SPENDWATCH_CLICKHOUSE_DSN"
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert str(settings.worker.state_dir) == "/var/lib/spendwatch"
    assert settings.alerting.receiver_names == ("console",)  # Slack disabled, not fatal
    assert [d.variable for d in settings.alerting.disabled] == ["SLACK_WEBHOOK_URL"]


def test_compose_spec_schema() -> None:
    """The expanded file is valid against the Compose specification's JSON Schema (the copy
    that check-jsonschema ships)."""
    # Read as a data file: importing check_jsonschema needs a newer click than Faust allows.
    spec = distribution("check-jsonschema").locate_file(
        "check_jsonschema/builtin_schemas/vendor/compose-spec.json"
    )
    schema = json.loads(Path(str(spec)).read_text())
    jsonschema.validate(stack(), schema, cls=jsonschema.Draft202012Validator)
    broken = stack()
    broken["services"]["worker"]["deploy"]["replicas"] = [2]
    with pytest.raises(jsonschema.ValidationError):  # positive control
        jsonschema.validate(broken, schema, cls=jsonschema.Draft202012Validator)


def test_grafana_provisioning_files_parse() -> None:
    base = ROOT / "deploy/grafana"
    parsed = 0
    for path in sorted(base.rglob("*")):
        if path.suffix in (".yml", ".yaml"):
            assert isinstance(yaml.safe_load(path.read_text()), dict), path
            parsed += 1
        elif path.suffix == ".json":
            assert isinstance(json.loads(path.read_text()), dict), path
            parsed += 1
    assert parsed >= 1


OLD_EXAMPLE = (ROOT / "spendwatch.example.toml").read_text().replace("required = false", "")


def _defect(name: str, compose: dict[str, Any], tmp: Path) -> tuple[dict[str, Any], str]:
    """The stack with one of the defects issue 15 found in it."""
    worker = compose["services"]["worker"]
    dockerfile = DOCKERFILE
    if name == "example config mounted, its chDB DSN winning":
        # What the old precedence (file over environment) amounted to.
        del worker["environment"]["SPENDWATCH_CLICKHOUSE_DSN"]
        worker["volumes"][0] = "./spendwatch.example.toml:/etc/spendwatch/spendwatch.toml:ro"
    elif name == "required Slack receiver, SLACK_WEBHOOK_URL empty":
        (tmp / "strict.toml").write_text(OLD_EXAMPLE)
        worker["volumes"][0] = f"{tmp}/strict.toml:/etc/spendwatch/spendwatch.toml:ro"
    elif name == "USER nobody, nothing writable":
        dockerfile = DOCKERFILE.replace("USER 10001:10001", "USER nobody")
    elif name == "one replica":
        worker["deploy"]["replicas"] = 1
    elif name == "KAFKA_LOG_DIRS unset":
        del compose["services"]["kafka"]["environment"]["KAFKA_LOG_DIRS"]
    elif name == "replicas share one named state volume":
        worker["volumes"][1] = "worker-state:/var/lib/spendwatch"
    elif name == "unpinned image":
        compose["services"]["clickhouse"]["image"] = "clickhouse/clickhouse-server:latest"
    elif name == "mounted file missing":
        worker["volumes"][0] = "./deploy/nope.toml:/etc/spendwatch/spendwatch.toml:ro"
    return compose, dockerfile


@pytest.mark.parametrize(
    ("defect", "expected"),
    [
        ("example config mounted, its chDB DSN winning", "is not the server"),
        ("required Slack receiver, SLACK_WEBHOOK_URL empty", "SLACK_WEBHOOK_URL is not set"),
        ("USER nobody, nothing writable", "is not writable for user nobody"),
        ("one replica", "replicas 1"),
        ("KAFKA_LOG_DIRS unset", "KAFKA_LOG_DIRS=None is not its volume"),
        ("replicas share one named state volume", "replicas would share"),
        ("unpinned image", "is not pinned"),
        ("mounted file missing", "does not exist"),
    ],
)
def test_each_past_defect_is_caught(defect: str, expected: str, tmp_path: Path) -> None:
    compose, dockerfile = _defect(defect, stack(), tmp_path)
    found = problems(ROOT, compose, dockerfile)
    assert any(expected in p for p in found), found
