"""Hypothesis strategies for hostile usage events, built as raw JSON bytes.

The bytes are assembled by hand (not with a JSON encoder) so a payload can hold what no encoder
writes: duplicate keys, ``NaN`` / ``Infinity``, deep nesting, lone surrogates, invalid UTF-8,
truncation, a byte-order mark. Valid events sit next to valid-but-extreme ones (maximum token
counts, maximum sizes, odd timestamp offsets, unicode and control characters).

Each payload carries the placeholder ``EVENT_ID`` (or ``EVENT_ID_UPPER``) where a valid event
id goes; :func:`with_event_id` puts a distinct UUID there per event, so two fuzzed events never
collide as repeats of one another.

The same field strategies serve the SDK fuzz test (:func:`sdk_values`): Python values of every
type, to pass to ``record()``.
"""

from __future__ import annotations

import functools
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

EVENT_ID = b'"EVENT_ID"'
EVENT_ID_UPPER = b'"EVENT_ID_UPPER"'

# (provider, model) the fuzz prices: fixed-price and tiered models of genai-prices.
MODELS = (
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("google", "gemini-1.5-pro"),
    ("anthropic", "claude-sonnet-4-5"),
)
SERVICES = ("chat", "voice", "lead-enricher", "a" * 128, "x.y:z/w-1")
METERED = '[[prices]]\nprovider = "twilio"\nunit = "minute"\nusd_per_unit = "0.014"\n'
MAX_TOKENS = 100_000_000

NASTY_TEXT = (
    "<!channel>",
    "<@U123>",
    "<https://evil.example|click>",
    "*bold* _it_ ~s~ `code`",
    "<script>alert(1)</script>",
    "\u202eRTL\u200b\ufeff",
    "\x00\x01\x1f\x7f",
    "日本語🙂",
    "a\nb\rc\td",
    '"; DROP TABLE usage_events; --',
    "\\",
    "",
)


def _s(text: str, *, ascii_only: bool = True) -> bytes:
    """A JSON string literal (``\\u`` escapes keep lone surrogates representable)."""
    return json.dumps(text, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@functools.cache
def _text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(NASTY_TEXT),
        st.text(max_size=40),
        st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=300),
    )


@functools.cache
def _string_value() -> st.SearchStrategy[bytes]:
    return st.one_of(
        _text().map(_s),
        _text().map(lambda t: _s(t, ascii_only=False)),
        st.just(b'"\\ud800"'),  # a lone surrogate
        st.just(b'"\xff\xfe"'),  # invalid UTF-8 inside a string
    )


@functools.cache
def _wrong_value() -> st.SearchStrategy[bytes]:
    deep = st.integers(1, 2000).map(lambda n: b"[" * n + b"]" * n)
    deep_obj = st.integers(1, 600).map(lambda n: b'{"a":' * n + b"1" + b"}" * n)
    return (
        st.sampled_from(
            [
                b"null",
                b"true",
                b"false",
                b"NaN",
                b"Infinity",
                b"-Infinity",
                b"1e999",
                b"-1",
                b"-0",
                b"1.0",
                b"1e2",
                b"18446744073709551616",
                b"9223372036854775808",
                b"[]",
                b"{}",
                b'"1"',
                b'"NaN"',
            ]
        )
        | deep
        | deep_obj
        | _string_value()
    )


@functools.cache
def _tokens() -> st.SearchStrategy[bytes]:
    valid = st.one_of(
        st.integers(0, 5000),
        st.integers(0, MAX_TOKENS),
        st.sampled_from([0, MAX_TOKENS, MAX_TOKENS - 1]),
    ).map(lambda n: str(n).encode())
    bad = st.just(str(MAX_TOKENS + 1).encode()) | _wrong_value()
    return st.one_of(*[valid] * 19, bad)


@functools.cache
def _ts(now: datetime) -> st.SearchStrategy[bytes]:
    def sdk(delta_us: int) -> bytes:
        return _s((now + timedelta(microseconds=delta_us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))

    def offset(delta_s: int, minutes: int) -> bytes:
        zone = timedelta(minutes=minutes)
        local = (now + timedelta(seconds=delta_s)).astimezone(UTC) + zone
        sign = "+" if minutes >= 0 else "-"
        hh, mm = divmod(abs(minutes), 60)
        return _s(local.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123" + f"{sign}{hh:02d}:{mm:02d}")

    recent = st.integers(-3_600_000_000, 0)
    return st.one_of(
        recent.map(sdk),
        recent.map(sdk),
        recent.map(sdk),
        recent.map(sdk),
        st.integers(0, 10**12).map(sdk),  # the future: clamped to ingest time
        st.builds(offset, st.integers(-3600, 600), st.integers(-23 * 60 - 59, 23 * 60 + 59)),
        st.sampled_from(
            [
                b'"9999-12-31T23:59:59.999999Z"',
                b'"2300-01-01T00:00:00Z"',
                b'"1970-01-01T00:00:00Z"',
                b'"0001-01-01T00:00:00+00:00"',
                b'"2026-02-30T00:00:00Z"',
                b'"2026-12-07T10:00:00"',  # naive
                b'"2026-12-07 10:00:00Z"',
                b'"2026-12-07T10:00:00z"',
                b'"2026-12-07T10:00:00+24:00"',
                b'"2026-12-07T10:00:00.1234567890123Z"',
                b'"2026-12-07T25:61:61Z"',
                b'"\\u0032026-12-07T10:00:00Z"',
                b"1765100000",
            ]
        ),
    )


@functools.cache
def _tags() -> st.SearchStrategy[bytes]:
    key = st.one_of(
        *[st.sampled_from(["team", "feature", "customer", "k" * 64, "a.b:c-d_e"])] * 12,
        st.sampled_from(["k" * 65, "ü", "a b", ""]),
        _text(),
    )
    value = st.one_of(st.sampled_from(["growth", "v" * 256, "v" * 257]), _text())
    pair = st.tuples(key.map(_s), value.map(_s))
    small = st.lists(pair, max_size=4).map(
        lambda ps: b"{" + b",".join(k + b":" + v for k, v in ps) + b"}"
    )
    return st.one_of(*[small] * 12, st.sampled_from(_MANY_TAGS), _wrong_value())


def _many_tags(n: int) -> bytes:
    return b"{" + b",".join(b'"t%d":"%s"' % (i, b"v" * 256) for i in range(n)) + b"}"


_MANY_TAGS = (_many_tags(32), _many_tags(33), b'{"a":"x","a":"y"}', b'{"a":{"b":"c"}}')


# Strategies built once (a strategy built inside a draw costs more than the draw).
_VERSION = st.sampled_from([b"1"] * 60 + [b"2", b"0"])
_IDS = st.sampled_from([EVENT_ID] * 60 + [EVENT_ID_UPPER, b'"not-a-uuid"', b'"' + b"0" * 36 + b'"'])
_SERVICE = st.sampled_from([_s(x) for x in SERVICES * 60 + NASTY_TEXT])
_STATUS = st.sampled_from([b'"ok"'] * 20 + [b'"error"'] * 9 + [b'"OK"'])
_KIND = st.sampled_from(["llm", "llm", "llm", "metered", "supplied", "other"])
_MODEL = st.sampled_from(MODELS)
_BOOL = st.sampled_from([b"true", b"false"])
_UNIT = st.sampled_from([b'"minute"', b'"minute"', b'"Minute"', b'"sms"'])
_QUANTITY = st.one_of(
    st.decimals(0, 10**6, places=9, allow_nan=False).map(lambda d: _s(str(d))),
    st.sampled_from(
        [
            b'"999999999999.999999999"',
            b'"658812288346.769700000"',
            b'"1e3"',
            b'"-1"',
            b'"0"',
            b'"1.0000000001"',
        ]
    ),
)
_COST = st.one_of(
    st.decimals(0, 10**4, places=9, allow_nan=False).map(lambda d: _s(str(d))),
    st.sampled_from([b'"999999999.999999999"', b'"0"', b'"1e3"', b'"-0.5"', b'"NaN"', b"0.5"]),
)
_LATENCY = st.one_of(
    st.floats(0, 86_400_000).map(lambda f: repr(f).encode()),
    st.sampled_from([b"0", b"-0.0", b"86400000", b"86400000.0001", b"1e-400"]),
)
_REQUEST_ID = st.sampled_from([b'"' + b"r" * 256 + b'"'] * 3 + [b'"' + b"r" * 257 + b'"'])
# Hypothesis favours small and boundary integers: scramble them over 0..999.
_ROLL = st.integers(0, 999).map(lambda r: (r * 7919 + 500) % 1000)
_BINARY = st.binary(max_size=200)
_OPERATION = st.sampled_from([b'"chat"', b'"embed"']) | st.sampled_from(NASTY_TEXT[:-1]).map(_s)
_TEXT_VALUE = _text().map(_s)
_OTHER = st.one_of(_tokens(), st.sampled_from([b'"chat"', b'"gpt-4o"', b'"ok"']), _wrong_value())
_MODEL_NAMES = {
    name: st.sampled_from([_s(name)] * 6 + [_s(t) for t in NASTY_TEXT]) for _, name in MODELS
}


@functools.cache
def _fields(now: datetime) -> st.SearchStrategy[list[tuple[bytes, bytes]]]:
    """Key/value byte pairs of one event, mostly plausible, often broken."""
    ts = _ts(now)

    @st.composite
    def build(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
        pairs: list[tuple[bytes, bytes]] = []

        def field(name: str, good: st.SearchStrategy[bytes], p_bad: float = 0.02) -> None:
            roll = draw(_ROLL) / 1000
            if roll < p_bad / 2:
                return  # missing
            value = draw(_wrong_value()) if roll < p_bad else draw(good)
            pairs.append((_s(name), value))

        def one_in(n: int) -> bool:
            return draw(_ROLL) % n == 0

        field("schema_version", _VERSION, 0.01)
        field("event_id", _IDS, 0.01)
        field("ts", ts, 0.01)
        field("service", _SERVICE, 0.01)
        field("operation", _OPERATION, 0.01)
        field("status", _STATUS, 0.01)
        kind = draw(_KIND)
        if kind == "llm":
            provider, name = draw(_MODEL)
            if one_in(2):
                pairs.append((b'"provider"', _s(provider)))
            field("model", _MODEL_NAMES[name])
            for token_field in ("input_tokens", "output_tokens"):
                field(token_field, _tokens(), 0.0)
            for token_field in ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
                if one_in(4):
                    field(token_field, _tokens(), 0.0)
            if one_in(10):
                field("cache_hit", _BOOL)
        elif kind == "metered":
            pairs.append((b'"provider"', b'"twilio"'))
            field("unit", _UNIT)
            field("quantity", _QUANTITY)
        elif kind == "supplied":
            pairs.append((b'"provider"', b'"acme"'))
            pairs.append((b'"unit"', b'"call"'))
            field("cost_usd", _COST)
        if one_in(2):
            field("latency_ms", _LATENCY)
        if one_in(3):
            field("tags", _tags(), 0.0)
        if one_in(6):
            field("request_id", _REQUEST_ID)
        if one_in(8):
            field("environment", _TEXT_VALUE)
        if one_in(8):
            field("error_type", _TEXT_VALUE)
        if one_in(16):
            pairs.append((draw(_TEXT_VALUE), b"1"))  # an unknown field
        if pairs and one_in(10):
            # a duplicate key: a field repeated with another value (JSON leaves it undefined)
            name, _ = pairs[draw(_ROLL) % len(pairs)]
            pairs.insert(draw(_ROLL) % (len(pairs) + 1), (name, draw(_OTHER)))
        if pairs and one_in(30):
            pairs.reverse()
        return pairs

    return build()


def _join(pairs: list[tuple[bytes, bytes]], sep: bytes) -> bytes:
    return b"{" + sep.join(k + b":" + v for k, v in pairs) + b"}"


@st.composite
def raw_events(draw: st.DrawFn, now: datetime) -> bytes:
    """One hostile usage event as raw bytes (see the module docstring)."""
    body = _join(draw(_fields(now)), b",")
    shape = draw(_ROLL) % 100
    if shape < 88:
        return body
    if shape < 90:
        return _join(draw(_fields(now)), b" ,\n\t ")  # whitespace between members
    if shape < 91:
        return b" \n" + body + b"\n"
    if shape < 92:
        return body[: draw(_ROLL) % max(1, len(body))]  # truncated
    if shape < 93:
        return b"[" + body + b"]"
    if shape < 94:
        return b"\xef\xbb\xbf" + body  # a byte-order mark
    if shape < 95:
        pad = b"p" * draw(st.integers(16 * 1024 - len(body) - 40, 16 * 1024 + 10))
        return body[:-1] + b',"request_id":"' + pad + b'"}' if len(body) > 2 else pad
    if shape < 96:
        return draw(_BINARY)
    if shape < 97:
        return draw(_wrong_value())
    if shape < 99:
        return body + b"," + body  # two objects
    return b""


def with_event_id(raw: bytes, index: int) -> bytes:
    """``raw`` with its event id placeholder replaced by the ``index``-th distinct UUID."""
    text = str(uuid.UUID(int=(0x5EED << 112) | index, version=4))
    return raw.replace(EVENT_ID, f'"{text}"'.encode()).replace(
        EVENT_ID_UPPER, f'"{text.upper()}"'.encode()
    )


# -- the SDK's side: Python values ------------------------------------------------------------
def sdk_values() -> st.SearchStrategy[Any]:
    """Python values of every kind a careless app could pass to ``record()``."""
    scalar = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.sampled_from([MAX_TOKENS, MAX_TOKENS + 1, -1, 0]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.decimals(allow_nan=True, allow_infinity=True),
        _text(),
        st.just("\ud800"),
        st.binary(max_size=20),
        st.datetimes(),
        st.datetimes(timezones=st.timezones()),
        st.just(object()),
    )
    return st.recursive(
        scalar,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(_text(), inner, max_size=3)
        ),
        max_leaves=8,
    )
