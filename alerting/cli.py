"""``spendwatch silence add | list | expire``: manage silences in the state dir.

    spendwatch silence add --match service=checkout --for 2h --comment "deploy"
    spendwatch silence add --match budget=~fleet-.* --match severity!=emergency --for 30m -c "..."
    spendwatch silence list [--all] [--json]
    spendwatch silence expire ID        # a unique prefix of the id is enough

Silences live in ``<state dir>/silences.json`` (``--state-dir``, else
``SPENDWATCH_STATE_DIR``, else ``./.spendwatch``). A running worker re-reads the file when
it changes, so a new silence takes effect within a tick. Exit codes: 0 ok, 2 bad input,
1 unknown silence id.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import UTC, datetime

import orjson

from alerting.policy.matchers import Matcher
from alerting.policy.silences import Silence, parse_duration
from alerting.render.text import format_time
from alerting.silence_store import FileSilenceStore
from alerting.state import SILENCES_FILE, STATE_DIR_ENV, state_dir
from schemas.events import parse_ts


def _store(args: argparse.Namespace) -> FileSilenceStore:
    return FileSilenceStore(state_dir(args.state_dir) / SILENCES_FILE)


def _author() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def cmd_add(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    try:
        matchers = [Matcher.parse(m) for m in args.match]
        duration = parse_duration(args.duration)
        starts_at = parse_ts(args.start) if args.start else None
        silence = Silence.create(
            matchers,
            now=now,
            duration=duration,
            comment=args.comment,
            created_by=args.author or _author(),
            starts_at=starts_at,
        )
    except ValueError as exc:
        print(f"spendwatch silence add: {exc}", file=sys.stderr)
        return 2
    _store(args).add(silence)
    print(silence.id)
    return 0


def _line(s: Silence, now: datetime) -> str:
    matchers = ",".join(str(m) for m in s.matchers)
    return (
        f"{s.id[:8]}  {s.state(now):<8} {format_time(s.starts_at)} -> {format_time(s.ends_at)}"
        f"  {matchers}  by {s.created_by}: {s.comment}"
    )


def cmd_list(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    store = _store(args)
    silences = [s for s in store.current() if args.all or s.state(now) != "expired"]
    if store.error:
        print(f"spendwatch silence list: {store.error}", file=sys.stderr)
        return 2
    if args.json:
        data = [{**s.to_dict(), "state": s.state(now)} for s in silences]
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return 0
    if not silences:
        print("no silences" if args.all else "no active or pending silences")
    for s in sorted(silences, key=lambda s: s.starts_at):
        print(_line(s, now))
    return 0


def cmd_expire(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    try:
        silence = _store(args).expire(args.id, now)
    except KeyError:
        print(f"spendwatch silence expire: no single silence matches {args.id!r}", file=sys.stderr)
        return 1
    print(f"expired {silence.id}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``silence`` with its ``add``, ``list`` and ``expire`` subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        default=None,
        help=f"state directory (default: ${STATE_DIR_ENV} or ./.spendwatch)",
    )
    silence = subparsers.add_parser("silence", help="mute alerts for a while")
    sub = silence.add_subparsers(dest="silence_command", required=True)

    add = sub.add_parser("add", parents=[common], help="add a silence")
    add.add_argument(
        "--match",
        "-m",
        action="append",
        required=True,
        help="label matcher: key=value, key!=value, key=~regex, key!~regex (repeatable)",
    )
    add.add_argument("--for", dest="duration", required=True, help="duration, e.g. 30m, 2h, 1d")
    add.add_argument("--comment", "-c", required=True, help="why (shown with the silence)")
    add.add_argument("--author", default=None, help="who (default: $USER)")
    add.add_argument("--start", default=None, help="ISO start time (default: now)")
    add.set_defaults(func=cmd_add)

    ls = sub.add_parser("list", parents=[common], help="list silences")
    ls.add_argument("--all", action="store_true", help="include expired silences")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=cmd_list)

    expire = sub.add_parser("expire", parents=[common], help="end a silence now")
    expire.add_argument("id", help="silence id (or a unique prefix)")
    expire.set_defaults(func=cmd_expire)
