"""micrograd_c: Karpathy's micrograd with its graph and backward pass in C.

Change ``from micrograd.engine import Value`` to ``from micrograd_c.engine import Value``
(and ``micrograd.nn`` to ``micrograd_c.nn``): same API, same numbers.
"""

from micrograd_c.engine import Value

__all__ = ["Value"]
__version__ = "0.1.0"
