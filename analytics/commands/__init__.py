"""Command handlers for the ``hepatrack`` CLI, one module per stage.

Each module registers its handlers with ``@command(name)``; importing this package
imports them all. A handler parses nothing itself: it calls the engine and returns a
``CommandResult``.
"""

import importlib
import pkgutil

for _mod in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_mod.name}")
