"""``MeshlabError``: the root of every error the lab raises on purpose.

Each module keeps its own subclasses next to the code that raises them (``store.NotFound``,
``apiserver.errors.ApiError``, ``network.ResolveError`` …); those that stand in for a builtin error keep
that base too (``ResolveError`` is also an ``OSError``, ``FaultError`` a ``ValueError``), so
``except OSError`` around a connection still catches an unresolvable name.

>>> from meshlab.network import ResolveError
>>> issubclass(ResolveError, MeshlabError) and issubclass(ResolveError, OSError)
True
"""

from __future__ import annotations


class MeshlabError(Exception):
    """Root of the lab's own errors."""
