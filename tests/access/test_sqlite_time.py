"""The access store's SQLite timestamps: the text SQLAlchemy's SQLite DateTime writes
(the quota windows compare them as text with the rows it wrote), made faster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from waybillguard.adapters.db.access_store import sqlite_time

_OFFSETS = st.integers(min_value=-23 * 60, max_value=23 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@given(
    st.datetimes(min_value=datetime(1001, 1, 2), max_value=datetime(9998, 12, 30)),
    _OFFSETS,
)
def test_sqlite_time_is_strftimes_text(moment: datetime, offset: timezone) -> None:
    aware = moment.replace(tzinfo=offset)
    assert sqlite_time(aware) == aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def test_whole_seconds_keep_their_microseconds() -> None:
    assert sqlite_time(datetime(2026, 11, 28, 9, 0, tzinfo=UTC)) == "2026-11-28 09:00:00.000000"
