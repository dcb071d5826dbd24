"""The SDK stays small: ``import spendwatch`` pulls in none of the optional integrations; each
integration module imports its library only when the app imports that module."""

from __future__ import annotations

import subprocess
import sys

import orjson

EXTRAS = ("opentelemetry", "litellm", "google.genai", "boto3", "botocore", "openai", "anthropic")


def loaded_after(code: str) -> list[str]:
    listing = f"[m for m in {EXTRAS!r} if m in sys.modules]"
    probe = f"{code}\nimport sys, json\nprint(json.dumps({listing}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, check=True, text=True)
    return list(orjson.loads(out.stdout.strip().splitlines()[-1]))


def test_import_spendwatch_loads_no_extra():
    assert loaded_after("import spendwatch") == []
    # positive control: the probe does see an integration that is imported
    assert loaded_after("import spendwatch.otel") == ["opentelemetry"]
