"""Alert policy (routing, grouping, inhibition, silences, repeat, resolve) and notifiers.

How the worker uses it::

    from alerting.config import AlertingSettings
    from alerting.delivery import AlertDispatcher

    settings = AlertingSettings.from_config(toml.get("alerting"))   # ConfigError on bad input
    dispatcher = AlertDispatcher.from_settings(settings, state_dir=..., recorder=write_row)
    await dispatcher.submit(alert, now)          # per Alert from spendwatch.alerts.v1
    await dispatcher.tick(now)                   # about once a second
    await dispatcher.send_digest(summary, now)   # once a day (alerting.digest.DigestSummary)
    await dispatcher.close()

``write_row`` receives ``alerting.records.AlertRecord`` / ``DeliveryRecord`` (``to_row()``).

Layout: ``config.py`` (settings, TOML shape), ``policy/`` (pure maths: matchers, routing,
grouping, inhibition, silences, retry), ``delivery.py`` (the dispatcher), ``deliverylog/``
(once-per-key ledger, file and memory logs), ``silence_store.py`` + ``cli.py`` (silences),
``notifiers/`` (console, slack, email, webhook, recording — one ``Notifier`` protocol),
``render/`` (text, Block Kit, email), ``digest.py`` (daily digest).
"""
