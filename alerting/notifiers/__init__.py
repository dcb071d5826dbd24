"""Notifiers: one module per destination, all behind the ``Notifier`` protocol (``base.py``).

``build_notifiers(settings)`` (``factory.py``) turns configured receivers into notifiers.
"""

from alerting.notifiers.base import Notifier

__all__ = ["Notifier"]
