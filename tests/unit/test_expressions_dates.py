"""Date functions and .NET date/time format strings: CDate, DateAdd, DateDiff, Now,
DateFromNum, NumFromDate, FormatDateTime. Results are UTC, rendered `M/d/yyyy h:mm:ss tt`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from random import Random
from typing import Any

import pytest

from worker.domain.expressions import ExpressionError, parse
from worker.domain.expressions.dates import (
    DateFormatError,
    format_datetime,
    parse_exact,
    parse_general,
)
from worker.domain.mapping import EvaluationContext

pytestmark = pytest.mark.unit

NOW = datetime(2021, 8, 25, 17, 41, 18, tzinfo=UTC)


def ev(text: str, attributes: dict[str, Any] | None = None, now: datetime = NOW) -> Any:
    context = EvaluationContext(now=lambda: now, random=Random(0))
    return parse(text).evaluate(attributes or {}, context)


@pytest.mark.parametrize(
    ("text", "attributes", "expected"),
    [
        # CDate example 1: "2020-03-16-07:00" -> "3/16/2020 7:00:00 AM" (UTC equivalent).
        ("CDate([StatusHireDate])", {"StatusHireDate": "2020-03-16-07:00"}, "3/16/2020 7:00:00 AM"),
        # Example 2: "2021-06-30+08:00" -> "6/29/2021 4:00:00 PM".
        ('CDate("2021-06-30+08:00")', {}, "6/29/2021 4:00:00 PM"),
        # Example 3: "2009-06-15T01:45:30-07:00" -> "6/15/2009 8:45:30 AM".
        ('CDate("2009-06-15T01:45:30-07:00")', {}, "6/15/2009 8:45:30 AM"),
        ('CDate("2021-08-24")', {}, "8/24/2021 12:00:00 AM"),
        ('CDate("8/25/2021 5:41:18 PM")', {}, "8/25/2021 5:41:18 PM"),
        ('CDate("12/25/2007")', {}, "12/25/2007 12:00:00 AM"),
        ('CDate("2012-01-01 23:00:00")', {}, "1/1/2012 11:00:00 PM"),
        ('CDate("2021-08-24T12:00:00Z")', {}, "8/24/2021 12:00:00 PM"),
        ('CDate("2021-08-24T00:30:00.1234567+02:00")', {}, "8/23/2021 10:30:00 PM"),
        ('CDate("January 1, 2012 11:00 PM")', {}, "1/1/2012 11:00:00 PM"),
        ('CDate("Sun, 01 Jan 2012 23:00:00 GMT")', {}, "1/1/2012 11:00:00 PM"),
        ('CDate("20150123105347.1Z")', {}, "1/23/2015 10:53:47 AM"),
        ("CDate([missing])", {}, None),
    ],
)
def test_cdate(text: str, attributes: dict[str, Any], expected: Any) -> None:
    assert ev(text, attributes) == expected


def test_cdate_rejects_what_is_not_a_date() -> None:
    with pytest.raises(ExpressionError, match="not a recognised date/time"):
        ev('CDate("not a date")')
    with pytest.raises(ExpressionError, match="CDate"):
        ev('CDate("2021-02-30")')


@pytest.mark.parametrize(
    ("interval", "value", "expected"),
    [
        # The reference's DateAdd table, StatusHireDate = 2012-03-16-07:00.
        ("d", 7, "3/23/2012 7:00:00 AM"),
        ("d", -10, "3/6/2012 7:00:00 AM"),
        ("ww", 2, "3/30/2012 7:00:00 AM"),
        ("m", 10, "1/16/2013 7:00:00 AM"),
        ("yyyy", 2, "3/16/2014 7:00:00 AM"),
        ("h", 5, "3/16/2012 12:00:00 PM"),
        ("n", -30, "3/16/2012 6:30:00 AM"),
        ("s", 90, "3/16/2012 7:01:30 AM"),
        ("q", 1, "6/16/2012 7:00:00 AM"),
    ],
)
def test_date_add(interval: str, value: int, expected: str) -> None:
    text = f'DateAdd("{interval}", {value}, CDate([StatusHireDate]))'
    assert ev(text, {"StatusHireDate": "2012-03-16-07:00"}) == expected


def test_date_add_clamps_to_the_end_of_a_shorter_month() -> None:
    assert ev('DateAdd("m", 1, CDate("2021-01-31"))') == "2/28/2021 12:00:00 AM"
    assert ev('DateAdd("yyyy", 1, CDate("2020-02-29"))') == "2/28/2021 12:00:00 AM"


def test_date_add_accepts_a_date_string_and_null() -> None:
    assert ev('DateAdd("d", 1, "2021-08-24")') == "8/25/2021 12:00:00 AM"
    assert ev('DateAdd("d", 1, [missing])') is None


@pytest.mark.parametrize(
    ("interval", "first", "second", "expected"),
    [
        # The reference's DateDiff table.
        ("d", "2021-08-18+08:00", "2021-08-31+08:00", 13),
        ("d", "8/25/2021 5:41:18 PM", "2012-03-16-07:00", -3449),
        ("ww", "8/25/2021 5:41:18 PM", "2012-03-16-07:00", -493),
        ("m", "8/25/2021 5:41:18 PM", "2012-03-16-07:00", -113),
        ("yyyy", "8/25/2021 5:41:18 PM", "2012-03-16-07:00", -9),
        ("d", "2021-08-31+08:00", "2021-08-31+08:00", 0),
        ("h", "2021-08-24", "2021-08-25", 24),
        ("n", "2021-08-24", "2021-08-25", 1440),
        ("s", "2021-08-24", "2021-08-25", 86400),
        # Calendar boundaries for years and months, truncation for spans.
        ("yyyy", "2021-12-31", "2022-01-01", 1),
        ("m", "2021-01-31", "2021-02-01", 1),
        ("d", "2021-08-24T23:00:00Z", "2021-08-25T22:59:59Z", 0),
    ],
)
def test_date_diff(interval: str, first: str, second: str, expected: int) -> None:
    text = f'DateDiff("{interval}", CDate("{first}"), CDate("{second}"))'
    assert ev(text) == expected


def test_date_diff_against_now() -> None:
    # Reference: DateDiff("d", Now(), CDate([StatusHireDate])), with Now = 8/25/2021 5:41:18 PM.
    text = 'DateDiff("d", Now(), CDate([StatusHireDate]))'
    assert ev(text, {"StatusHireDate": "2012-03-16-07:00"}) == -3449
    # 2021-08-31+08:00 is 8/30/2021 4:00 PM UTC: 4 days and 22 hours away, truncated.
    assert ev(text, {"StatusHireDate": "2021-08-31+08:00"}) == 4


def test_interval_is_checked_at_parse_time() -> None:
    with pytest.raises(ExpressionError) as caught:
        parse('DateAdd("days", 1, Now())')
    assert caught.value.position == 8
    assert "unknown interval" in caught.value.message


def test_now_uses_the_injected_clock_in_utc() -> None:
    # Reference: "Example value returned 7/2/2021 3:33:38 PM".
    assert ev("Now()", now=datetime(2021, 7, 2, 15, 33, 38, tzinfo=UTC)) == "7/2/2021 3:33:38 PM"
    paris = timezone(timedelta(hours=2))
    assert ev("Now()", now=datetime(2021, 7, 2, 17, 33, 38, tzinfo=paris)) == "7/2/2021 3:33:38 PM"
    assert ev("Now()", now=datetime(2021, 7, 2, 0, 5, 0)) == "7/2/2021 12:05:00 AM"


def test_date_from_num() -> None:
    # Reference: DateFromNum(129699324000000000) is January 1, 2012 at 11:00PM.
    assert ev("DateFromNum(129699324000000000)") == "1/1/2012 11:00:00 PM"
    assert ev(
        "DateFromNum([lastLogonTimestamp])", {"lastLogonTimestamp": "129699324000000000"}
    ) == ("1/1/2012 11:00:00 PM")
    assert ev("DateFromNum([lastLogonTimestamp])") is None


def test_num_from_date() -> None:
    # Entra Connect's reference: NumFromDate(CDate("2012-01-01 23:00:00")) = 129699324000000000.
    assert ev('NumFromDate(CDate("2012-01-01 23:00:00"))') == 129699324000000000
    assert ev('NumFromDate("2012-01-01 23:00:00")') == 129699324000000000
    assert ev("NumFromDate(DateFromNum(129699324000000000))") == 129699324000000000


def test_num_from_date_workday_example() -> None:
    # Reference: ContractEndDate "2020-12-31-08:00", end of that day at -08:00.
    text = (
        'NumFromDate(Join("", FormatDateTime([ContractEndDate], ,"yyyy-MM-ddzzz", "yyyy-MM-dd"),'
        ' " 23:59:59-08:00"))'
    )
    expected = ev('NumFromDate("2021-01-01T07:59:59Z")')
    assert ev(text, {"ContractEndDate": "2020-12-31-08:00"}) == expected == 132539615990000000


def test_num_from_date_successfactors_example() -> None:
    text = (
        'NumFromDate(Join("",FormatDateTime([endDate], ,"M/d/yyyy hh:mm:ss tt","yyyy-MM-dd"),'
        '" 23:59:59-08:00"))'
    )
    assert ev(text, {"endDate": "12/31/2020 10:00:00 AM"}) == 132539615990000000


@pytest.mark.parametrize(
    ("source", "styles", "input_format", "output_format", "expected"),
    [
        # The reference's example: "20150123105347.1Z" -> "2015-01-23".
        ("20150123105347.1Z", "", "yyyyMMddHHmmss.fZ", "yyyy-MM-dd", "2015-01-23"),
        (
            "20150123105347.1Z",
            "",
            "yyyyMMddHHmmss.fZ",
            "dd/MM/yyyy HH:mm:ss.f",
            "23/01/2015 10:53:47.1",
        ),
        ("2020-12-31-08:00", "", "yyyy-MM-ddzzz", "yyyy-MM-dd", "2020-12-31"),
        # Offsets fold into UTC.
        (
            "2020-12-31T20:00:00-08:00",
            "",
            "yyyy-MM-ddTHH:mm:sszzz",
            "yyyy-MM-dd HH:mm",
            "2021-01-01 04:00",
        ),
        (
            "2020-12-31T20:00:00-08:00",
            "",
            "yyyy-MM-ddTHH:mm:sszzz",
            "yyyy-MM-ddTHH:mm:sszzz",
            "2021-01-01T04:00:00+00:00",
        ),
        (
            "12/31/2020 11:59:59 PM",
            "",
            "M/d/yyyy hh:mm:ss tt",
            "yyyyMMddHHmmss.0Z",
            "20201231235959.0Z",
        ),
        ("1/2/2021 12:05:00 AM", "", "M/d/yyyy hh:mm:ss tt", "HH:mm", "00:05"),
        ("1/2/2021 12:05:00 PM", "", "M/d/yyyy h:mm:ss tt", "h:mm tt", "12:05 PM"),
        ("2021-03-04", "", "yyyy-MM-dd", "MMMM d, yyyy", "March 4, 2021"),
        ("2021-03-04", "", "yyyy-MM-dd", "ddd dd MMM yy", "Thu 04 Mar 21"),
        ("2021-03-04", "", "yyyy-MM-dd", "dddd", "Thursday"),
        ("04 March 2021", "", "dd MMMM yyyy", "yyyy-MM-dd", "2021-03-04"),
        ("2021-03-04", "", "yyyy-MM-dd", "yyyy-MM-ddTHH:mm:ssK", "2021-03-04T00:00:00Z"),
        ("2021-03-04", "", "yyyy-MM-dd", "'Date:' yyyy\\-MM", "Date: 2021-03"),
        ("2021-03-04", "", "yyyy-MM-dd", "z zz zzz", "+0 +00 +00:00"),
        ("2021-03-04 10:20:30.1234567", "", "yyyy-MM-dd HH:mm:ss.fffffff", "ss.fff", "30.123"),
        ("2021-03-04 10:20:30", "", "yyyy-MM-dd HH:mm:ss", "HH:mm:ss.FFF", "10:20:30"),
        ("2021-03-04", "", "yyyy-MM-dd", "s", "2021-03-04T00:00:00"),
        ("2021-03-04", "", "yyyy-MM-dd", "d", "03/04/2021"),
        ("2021-03-04", "", "yyyy-MM-dd", "o", "2021-03-04T00:00:00.0000000Z"),
        ("2021-03-04", "", "yyyy-MM-dd", "%d", "4"),
        ("  2021-03-04  ", "", "yyyy-MM-dd", "yyyyMMdd", "20210304"),
        ("2021-03-04", "DateTimeStyles.AdjustToUniversal", "yyyy-MM-dd", "yyyyMMdd", "20210304"),
        ("20210304", "RoundtripKind, AllowLeadingWhite", "yyyyMMdd", "yyyy-MM-dd", "2021-03-04"),
    ],
)
def test_format_date_time(
    source: str, styles: str, input_format: str, output_format: str, expected: str
) -> None:
    style_arg = f'"{styles}"' if styles else ""
    text = f'FormatDateTime([d], {style_arg}, "{input_format}", "{output_format}")'
    assert ev(text, {"d": source}) == expected


def test_format_date_time_of_a_date_value() -> None:
    assert ev('FormatDateTime(DateFromNum(129699324000000000), , , "yyyyMMddHHmmss.0Z")') == (
        "20120101230000.0Z"
    )
    assert ev('FormatDateTime(CDate("12/25/2007"), , , "yyyy-MM-dd")') == "2007-12-25"


def test_format_date_time_null_in_null_out() -> None:
    assert ev('FormatDateTime([d], , "yyyy-MM-dd", "yyyyMMdd")') is None
    assert ev('FormatDateTime([d], , "yyyy-MM-dd", "yyyyMMdd")', {"d": ""}) is None


def test_format_date_time_mismatch_is_an_error() -> None:
    with pytest.raises(ExpressionError, match="does not match the format"):
        ev('FormatDateTime([d], , "yyyy-MM-dd", "yyyyMMdd")', {"d": "31/12/2020"})


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('FormatDateTime([d], , "yyyy-MM-dd", "q")', "not a standard date/time format"),
        ('FormatDateTime([d], , "yyyy-MM-dd \'oops", "d")', "unterminated quoted text"),
        ('FormatDateTime([d], "Sideways", "yyyy-MM-dd", "d")', "unknown DateTimeStyles"),
        ('FormatDateTime([d], , "ffffffff", "d")', "at most 7 fraction digits"),
    ],
)
def test_bad_formats_are_rejected_at_parse_time(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(text)
    assert fragment in caught.value.message


def test_format_and_parse_helpers_round_trip() -> None:
    moment = datetime(2009, 6, 15, 8, 45, 30, 123400, tzinfo=UTC)
    for fmt in (
        "yyyy-MM-ddTHH:mm:ss.fffffffK",
        "M/d/yyyy h:mm:ss.FFFF tt",
        "dd MMMM yyyy HH:mm:ss.ff",
    ):
        rendered = format_datetime(moment, fmt)
        parsed = parse_exact(rendered, fmt, frozenset(), NOW)
        assert parsed.replace(microsecond=parsed.microsecond // 10000 * 10000) == moment.replace(
            microsecond=moment.microsecond // 10000 * 10000
        )


def test_parse_exact_without_a_date_uses_today() -> None:
    assert parse_exact("10:30", "HH:mm", frozenset(), NOW) == datetime(
        2021, 8, 25, 10, 30, tzinfo=UTC
    )


def test_parse_exact_two_digit_years_pivot_at_2049() -> None:
    assert parse_exact("49-01-01", "yy-MM-dd", frozenset(), NOW).year == 2049
    assert parse_exact("50-01-01", "yy-MM-dd", frozenset(), NOW).year == 1950


def test_parse_exact_rejects_impossible_dates() -> None:
    with pytest.raises(DateFormatError):
        parse_exact("2021-02-29", "yyyy-MM-dd", frozenset(), NOW)
    with pytest.raises(DateFormatError):
        parse_exact("13:00 PM", "hh:mm tt", frozenset(), NOW)


def test_parse_general_returns_none_for_garbage() -> None:
    assert parse_general("yesterday") is None
    assert parse_general("2021-13-01") is None
    assert parse_general("") is None
