"""``spendwatch ingest``: usage events over HTTP, for apps in any language.

A process of its own beside the worker: it validates what it receives and produces it to
``spendwatch.usage.v1`` (key = service), exactly as the SDK would, and answers only after the
broker acknowledged. Its parts:

``settings``  the ``[ingest]`` section of ``spendwatch.toml``
``otlp``      OTLP/HTTP trace requests (protobuf, JSON) -> spans -> usage events
``lines``     JSON lines of usage events v1 -> per-line results
``producer``  the Kafka producer: acknowledged, bounded in time, or ``BrokerUnavailable``
``server``    the aiohttp application and its routes
``cli``       the ``spendwatch ingest`` command
"""
