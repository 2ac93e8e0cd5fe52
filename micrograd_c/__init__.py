"""micrograd_c: Karpathy's micrograd with its graph and backward pass in C.

Change ``from micrograd.engine import Value`` to ``from micrograd_c.engine import Value``
(and ``micrograd.nn`` to ``micrograd_c.nn``): same API, same numbers.
"""

import gc as _gc

from micrograd_c import _core
from micrograd_c.engine import Value

__all__ = ["Value", "collect"]


def collect() -> None:
    """Frees now every graph node no Value reaches and gives the memory back to the system.

    The arena reclaims dropped graphs by itself whenever it fills, and shrinks by itself once a
    run of reclaims found it far bigger than what is alive.  Call this after dropping a big
    graph to get its memory back at once (it also runs Python's gc.collect(), so Values in
    reference cycles go too).  Not needed in a training loop: there the arena stays within
    2.5x what is alive at once.
    """
    _gc.collect()
    _core.check(_core.lib.mg_collect())


__version__ = "0.1.0"
