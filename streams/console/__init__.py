"""The read-only web console the worker serves beside its SQL endpoint (issue 17).

``console_app(settings)`` returns an installer for the endpoint's aiohttp app; the worker's
runtime passes it to ``start_sql_endpoint(..., extend=...)``. See :mod:`streams.console.web`.
"""

from streams.console.web import Console, console_app

__all__ = ["Console", "console_app"]
