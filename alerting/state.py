"""Where alerting keeps its state (delivery log, silences).

Explicit argument beats ``SPENDWATCH_STATE_DIR`` beats ``./.spendwatch``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from schemas import environment

STATE_DIR_ENV: Final = environment.STATE_DIR.name
DEFAULT_STATE_DIR: Final = ".spendwatch"
DELIVERY_LOG_FILE: Final = "alert-delivery-log.jsonl"
SILENCES_FILE: Final = "silences.json"


def state_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get(STATE_DIR_ENV, "").strip()
    return Path(env) if env else Path(DEFAULT_STATE_DIR)
