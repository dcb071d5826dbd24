"""The window of stored event ids: what it vouches for, and how it stays bounded."""

from __future__ import annotations

from streams.hot.dedupe import US_PER_MINUTE, StoredIds, id_key

MIN = US_PER_MINUTE
T0 = 29_000_000 * MIN  # some minute in 2025


def window(**kw: int) -> StoredIds:
    ids = StoredIds(
        window_s=kw.get("window_s", 3600),
        max_ids=kw.get("max_ids", 10_000),
        skew_s=kw.get("skew_s", 300),
    )
    ids.reset(0, T0, [])
    return ids


def test_id_key_is_the_uuid_integer() -> None:
    assert id_key("00000000-0000-0000-0000-00000000000a") == 10
    assert id_key("FFFFFFFF-0000-0000-0000-000000000000") == 0xFFFFFFFF << 96


def test_seen_after_add_and_per_partition() -> None:
    ids = window()
    ids.reset(1, T0, [])
    ids.add(0, [(T0 + 5, 42)])
    assert ids.seen(0, 42)
    assert not ids.seen(1, 42)  # a repeat always lands on its service's partition
    assert not ids.seen(0, 43)
    assert not ids.seen(7, 42)  # a partition not assigned knows nothing


def test_sure_only_past_the_horizon_plus_the_skew() -> None:
    ids = window(skew_s=300)
    assert not ids.is_sure(0, T0)
    assert not ids.is_sure(0, T0 + 300 * 1_000_000 - 1)
    assert ids.is_sure(0, T0 + 300 * 1_000_000)
    assert not ids.is_sure(3, T0 + 10**12)  # unassigned: never sure


def test_reset_rebuilds_from_stored_rows() -> None:
    ids = window()
    ids.reset(0, T0, [(T0 + 3 * MIN, 5), (T0 + MIN, 6)])
    assert ids.seen(0, 5) and ids.seen(0, 6)
    assert ids.size == 2


def test_trim_drops_minutes_older_than_the_window_and_moves_the_horizon() -> None:
    ids = window(window_s=600)  # ten minutes
    ids.add(0, [(T0 + MIN, 1), (T0 + 12 * MIN, 2)])
    ids.trim(T0 + 15 * MIN)  # keeps minutes from T0 + 5 min on
    assert not ids.seen(0, 1) and ids.seen(0, 2)
    assert ids.partitions[0].horizon_us == T0 + 5 * MIN
    assert not ids.is_sure(0, T0 + 6 * MIN)  # within horizon + skew: ClickHouse decides


def test_max_ids_evicts_the_oldest_minutes_first() -> None:
    ids = window(max_ids=10_000)
    ids.reset(1, T0, [])
    ids.add(0, [(T0, k) for k in range(6000)])
    ids.add(1, [(T0 + MIN, k) for k in range(6000)])
    ids.trim(T0 + 2 * MIN)
    assert ids.size == 6000
    assert not ids.seen(0, 1) and ids.seen(1, 1)
    assert ids.partitions[0].horizon_us == T0 + MIN


def test_drop_forgets_a_revoked_partition() -> None:
    ids = window()
    ids.add(0, [(T0, 9)])
    ids.drop(0)
    assert not ids.seen(0, 9) and ids.size == 0
