"""The campaign window: init dates released in priority order, at most N unfinished at once."""

from __future__ import annotations

import random

import pytest

from swarmcast.ops.ensemble.campaign import DateWindow
from swarmcast.ops.ensemble.store import Unit


def units(dates: int, checkpoints: int = 2, blocks: int = 2) -> list[Unit]:
    return [Unit(d, c, b) for d in range(dates) for c in range(checkpoints) for b in range(blocks)]


def test_a_date_opens_when_the_last_unit_of_an_open_date_finishes():
    done: list[int] = []
    w = DateWindow(units(4, blocks=1), max_dates=2, on_date_done=done.append)
    assert w.release() == [Unit(0, 0, 0), Unit(0, 1, 0), Unit(1, 0, 0), Unit(1, 1, 0)]
    assert w.finished(Unit(1, 0, 0)) == [] and w.open == {0, 1}
    assert w.finished(Unit(1, 1, 0)) == [Unit(2, 0, 0), Unit(2, 1, 0)]  # date 1 done: date 2 opens
    assert done == [1] and w.open == {0, 2}
    with pytest.raises(ValueError, match="its date is not open"):
        w.finished(Unit(3, 0, 0))


@pytest.mark.parametrize("cap", [1, 2, 3, None])
@pytest.mark.parametrize("order", ["oldest-first", "newest-first"])
def test_random_completion_orders_keep_the_cap_and_the_priority(cap, order):
    all_units = units(5)
    for trial in range(20):
        rng = random.Random(trial)
        done: list[int] = []
        w = DateWindow(rng.sample(all_units, len(all_units)), order=order, max_dates=cap, on_date_done=done.append)
        released = w.release()
        running = list(released)
        while running:
            u = running.pop(rng.randrange(len(running)))
            assert len(w.open) <= (cap or 5)
            new = w.finished(u)
            released += new
            running += new
        assert sorted(released) == sorted(all_units)  # every unit handed out exactly once
        first_release = list(dict.fromkeys(u.init for u in released))
        priority = sorted(range(5), reverse=order == "newest-first")
        assert first_release == priority  # dates open in priority order
        assert done == w.completed and sorted(done) == list(range(5)) and w.done
        assert w.most_open == (cap or 5)
        if cap == 1:
            assert done == priority  # one at a time: dates also finish in priority order


def test_no_limit_opens_every_date_and_a_zero_limit_is_refused():
    w = DateWindow(units(3))
    assert len(w.release()) == 12 and w.open == {0, 1, 2}
    with pytest.raises(ValueError, match="max_dates must be at least 1"):
        DateWindow(units(3), max_dates=0)
