"""Command handlers for the ``hepatrack`` CLI, one module per stage.

Each module registers its handlers with ``@command(name)``. ``analytics.cli`` imports only
the module of the command being run (``analytics.cli.COMMAND_MODULES``), so a command's
start-up pays only for what that command uses. A handler parses nothing itself: it calls
the engine and returns a ``CommandResult``.
"""
