"""The handle table: a Value's handle is generation * 2**32 + slot (a whole number held in a
double, graph.h says why), and a freed slot is reused under a new generation, so the table stays
as small as the live set while a stale copy of an old handle names no node."""

import math

from micrograd_c._core import lib
from micrograd_c.engine import Value

SLOT = 0xFFFFFFFF


def slot(handle: float) -> int:
    return int(handle) & SLOT


def generation(handle: float) -> int:
    return int(handle) >> 32


def test_freed_slots_are_reused_so_the_table_follows_the_live_set():
    # (the C driver's RSS check that would see a table that never reuses slots is off under
    # the sanitizers: this sees it directly)
    made = 100_000
    slots, generations = set(), {}
    for i in range(made):
        v = Value(float(i))
        k = slot(v._h)
        slots.add(k)
        generations[k] = max(generations.get(k, -1), generation(v._h))
        del v
    assert len(slots) <= made // 100, f"{len(slots)} slots for one live Value at a time"
    assert max(generations.values()) >= made // len(slots) - 1  # each reuse, a new generation


def test_a_stale_handle_to_a_reused_slot_names_no_node():
    a = Value(1.5)
    stale = a._h
    del a
    others = [Value(float(i)) for i in range(1000)]  # one of them gets the slot back
    assert any(slot(v._h) == slot(stale) for v in others)
    assert math.isnan(lib.mg_data(stale))
    assert lib.mg_set_data(stale, 9.0) == lib.MG_ERR_BAD_HANDLE
    assert [v.data for v in others] == [float(i) for i in range(1000)]
