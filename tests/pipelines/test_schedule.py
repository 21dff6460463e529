"""``swarmcast schedule`` ticks as cron does: hand-checked calendar cases and croniter as a second opinion."""

from datetime import UTC, datetime, timedelta

import pytest
from croniter import croniter

from swarmcast.pipelines.cluster.schedule import Schedule
from swarmcast.pipelines.config import ConfigError

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # a Monday


def ticks(expr: str, start: datetime, n: int) -> list[datetime]:
    s, out, t = Schedule.from_cron(expr), [], start
    for _ in range(n):
        t = s.next(t)
        out.append(t)
    return out


def test_day_of_month_and_day_of_week_are_ored_when_both_are_restricted():
    # 1st of the month OR any Monday (cron and Kubernetes), not "a Monday that is the 1st"
    got = ticks("0 0 1 * 1", T0, 4)
    assert got == [datetime(2026, 12, d, tzinfo=UTC) for d in (1, 7, 14, 21)]


def test_february_29_fires_in_leap_years_only():
    assert ticks("0 0 29 2 *", T0, 2) == [datetime(2028, 2, 29, tzinfo=UTC), datetime(2032, 2, 29, tzinfo=UTC)]


def test_a_step_from_a_single_value_means_every_step_from_there():
    assert [t.minute for t in ticks("5/15 * * * *", T0, 5)] == [5, 20, 35, 50, 5]


def test_seven_and_names_are_sunday_and_calendar_names():
    sundays = ticks("0 6 * * 7", T0, 2)
    assert sundays == [datetime(2026, 12, 6, 6, tzinfo=UTC), datetime(2026, 12, 13, 6, tzinfo=UTC)]
    assert ticks("0 6 * * SUN", T0, 2) == sundays
    assert ticks("30 1 * JAN MON", T0, 2) == [
        datetime(2027, 1, 4, 1, 30, tzinfo=UTC),
        datetime(2027, 1, 11, 1, 30, tzinfo=UTC),
    ]


def test_previous_is_the_tick_at_or_before_and_next_the_first_after():
    daily = Schedule.from_cron("0 6 * * *")
    six = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    assert daily.previous(six) == six  # a tick exactly now is the current tick
    assert daily.previous(six + timedelta(seconds=59)) == six
    assert daily.previous(six - timedelta(seconds=1)) == six - timedelta(days=1)
    assert daily.next(six) == six + timedelta(days=1)


@pytest.mark.parametrize(
    "expr",
    [
        "0 6 * * *",
        "*/15 12 * * 1-5",
        "0 0 1 * 1",
        "5/15 * * * *",
        "0 0 29 2 *",
        "0 6 * * 7",
        "30 1 * JAN,JUL MON-FRI",
        "0 0 1-7 * 2",
        "10-50/20 3,15 */3 * *",
    ],
)
def test_ticks_agree_with_croniter(expr):
    start = datetime(2026, 2, 27, 23, 59, tzinfo=UTC)
    it = croniter(expr, start)
    theirs = [it.get_next(datetime) for _ in range(12)]
    assert ticks(expr, start, 12) == theirs
    back = croniter(expr, theirs[-1])
    assert Schedule.from_cron(expr).previous(theirs[-1] - timedelta(seconds=1)) == back.get_prev(datetime)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 6 * *", "needs 5 fields"),
        ("0 25 * * *", r"the hour field '25' is invalid or outside 0\.\.23"),
        ("0 0 30 2 *", "day-of-month field '30'"),
        ("61 * * * *", "minute field '61'"),
        ("0 0 * FOO *", "month field 'FOO'"),
    ],
)
def test_impossible_expressions_are_refused_with_the_field(expr, message):
    with pytest.raises(ConfigError, match=message):
        Schedule.from_cron(expr)
