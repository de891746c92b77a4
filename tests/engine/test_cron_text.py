from __future__ import annotations

import pytest

from nerve.engine.cron_text import describe_cron


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("*/5 * * * *", "every 5 minutes"),
        ("* * * * *", "every minute"),
        ("30 7 * * 1-5", "at 07:30 on Monday to Friday"),
        ("0 2 * * *", "at 02:00 every day"),
        ("0 9 * * sat,sun", "at 09:00 on Saturday and Sunday"),
        ("15 * * * *", "every hour at minute 15"),
        ("0 */2 * * *", "every 2 hours at minute 0"),
        ("0 0 1 * *", "at 00:00 on day 1 of the month"),
        ("0 12 24 12 *", "at 12:00 on day 24 of the month in December"),
        ("0 0 * * 0", "at 00:00 on Sunday"),
        ("0 0 * * 7", "at 00:00 on Sunday"),
        # Shapes it does not put in words stay as they are.
        ("1,31 * * * *", "cron 1,31 * * * *"),
        ("0 0 L * *", "cron 0 0 L * *"),
        ("0 0 * * mon#2", "cron 0 0 * * mon#2"),
        ("nonsense", "cron nonsense"),
    ],
)
def test_describe_cron(expression: str, words: str) -> None:
    assert describe_cron(expression) == words


def test_schedule_trigger_describes_itself() -> None:
    from conftest import rules_from

    (rule,) = rules_from(
        """
  - id: weekday
    when: {schedule: {cron: "30 7 * * 1-5"}}
    do: [{log: x}]
"""
    )
    assert rule.triggers[0].describe() == "at 07:30 on Monday to Friday"


@pytest.mark.parametrize(
    ("cron", "weekdays"),
    [
        ("0 9 * * 1", {"Mon"}),
        ("0 9 * * 0", {"Sun"}),
        ("0 9 * * 7", {"Sun"}),
        ("0 9 * * 1-5", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
        ("0 9 * * 0,6", {"Sat", "Sun"}),
        ("0 9 * * */2", {"Sun", "Tue", "Thu", "Sat"}),
        ("0 9 * * 1-5/2", {"Mon", "Wed", "Fri"}),
        ("0 9 * * mon-fri", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
        ("0 9 * * *", {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}),
    ],
)
def test_cron_weekdays_are_crontab_weekdays(cron: str, weekdays: set[str]) -> None:
    """0 and 7 are Sunday, 1 is Monday, as in crontab (APScheduler 3 counts from Monday)."""
    import datetime as dt

    from conftest import rules_from

    (rule,) = rules_from(
        f'  - {{id: c, when: {{schedule: {{cron: "{cron}"}}}}, do: [{{log: x}}]}}\n'
    )
    start = dt.datetime(2026, 11, 23, 12, 0).astimezone()  # a Monday
    times = rule.triggers[0].next_fire_times(14, now=start)  # type: ignore[attr-defined]
    assert {t.strftime("%a") for t in times} == weekdays
