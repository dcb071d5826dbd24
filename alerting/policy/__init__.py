"""Pure alert policy: routing, grouping, inhibition, silences, repeats, retries.

Every function here takes the time it needs as an explicit ``now`` (timezone-aware) and
does no I/O, so each rule is unit-tested with fixed timestamps. ``alerting.delivery``
drives them.
"""
