"""The worker's agents, tasks and timers: thin loops, one module each.

Each receives the :class:`streams.app.Pipeline` (what the worker holds) and calls pure code;
``streams.app`` registers them on the Faust app under the supervisor's guard.
"""
