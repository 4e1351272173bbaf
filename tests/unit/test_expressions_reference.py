"""Entra's expression reference, example by example and rule by rule, through the CLI's path.

Every case comes from "Reference for writing expressions for attribute mappings in Microsoft
Entra ID" (MicrosoftDocs/entra-docs, docs/identity/app-provisioning/
functions-for-customizing-application-data.md) unless it says "Connect" (the sibling
"Microsoft Entra Connect Sync: Functions Reference", consulted where the first is silent) or
"customize" (customize-application-attributes.md, for the app role functions). Each case names
its function and quotes, briefly, the text it comes from.

Expressions are typed as a user types them on a command line: the reference's markdown
writes `\\\\d` inside code spans, which renders as `\\d`; both spellings are accepted, because
the only escapes in a string constant are `\\"` and `\\\\`.

Values are compared as `tenant-sync expr` prints them: `parse(text).evaluate(...)` then
`to_cli_json`, with a fixed clock (the reference's DateDiff "date1", 8/25/2021 5:41:18 PM)
and a seeded random source.
"""

from __future__ import annotations

import re
import string
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from random import Random
from typing import Any

import pytest

from worker.domain.expressions import ExpressionError, parse, to_cli_json
from worker.domain.expressions.functions import SPECIAL_CHARACTERS
from worker.domain.mapping import EvaluationContext, Redacted

pytestmark = pytest.mark.unit

NOW = datetime(2021, 8, 25, 17, 41, 18, tzinfo=UTC)

IGNORED = object()  # expected result {"ignored": true}


def cli_json(
    text: str,
    attributes: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    now: datetime = NOW,
    is_unique: Any = None,
) -> dict[str, Any]:
    context = EvaluationContext(now=lambda: now, random=Random(seed), is_unique=is_unique)
    return to_cli_json(parse(text).evaluate(attributes or {}, context))


def value_of(text: str, attributes: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    printed = cli_json(text, attributes, **kwargs)
    assert set(printed) == {"value"}, printed
    return printed["value"]


@dataclass(frozen=True)
class Case:
    function: str
    cites: str  # the reference text the case comes from
    expression: str
    expected: Any
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.function}: {self.cites}"


def c(
    function: str,
    cites: str,
    expression: str,
    expected: Any,
    attributes: dict[str, Any] | None = None,
) -> Case:
    return Case(function, cites, expression, expected, attributes or {})


HIRE = {"StatusHireDate": "2012-03-16-07:00"}
ADDRESSES = {"proxyAddresses": ["SMTP:john@contoso.com", "smtp:jd@contoso.com", "x500:/o=x"]}

CASES: list[Case] = [
    # --- Syntax overview -------------------------------------------------------------------
    c("syntax", "nest functions: FunctionOne(FunctionTwo(...))",
      'ToUpper(Left([givenName], 2))', "JO", {"givenName": "John"}),
    c("syntax", 'string constants in double quotes: "United States"',
      '"United States"', "United States"),
    c("syntax", 'escape " with a backslash: "Company name: \\"Contoso\\""',
      'Append("Company name: \\"Contoso\\"", "")', 'Company name: "Contoso"'),
    c("syntax", "the same example as its markdown source spells it (doubled backslashes)",
      'Append("Company name: \\\\"Contoso\\\\"", "")', 'Company name: "Contoso"'),
    c("syntax", "escape a backslash with a backslash",
      'Append("C:\\\\temp", "\\\\")', "C:\\temp\\"),
    c("syntax", "a string may end in an escaped backslash before the next argument",
      'Join("\\\\", "a\\\\", "b")', "a\\\\b"),
    c("syntax", "the syntax is case-sensitive (string comparison)",
      'Switch([c], "other", "usa", "lower")', "other", {"c": "USA"}),
    c("syntax", "expressions may span lines (SelectUniqueValue example)",
      'Join("@",\n    [a],\n    "contoso.com")', "x@contoso.com", {"a": "x"}),
    # --- Append ----------------------------------------------------------------------------
    c("Append", "INPUT John.Doe@contoso.com OUTPUT John.Doe@contoso.com.test",
      'Append([userPrincipalName], ".test")', "John.Doe@contoso.com.test",
      {"userPrincipalName": "John.Doe@contoso.com"}),
    c("Append", "Generate user alias: John + Doe -> JohDoe",
      "Append(Mid([givenName], 1, 3), Mid([surname], 1, 5))", "JohDoe",
      {"givenName": "John", "surname": "Doe"}),
    # --- AppRoleAssignmentsComplex / SingleAppRoleAssignment (customize) -------------------
    c("AppRoleAssignmentsComplex", "customize: every role, primary false, display and value",
      "AppRoleAssignmentsComplex([appRoleAssignments])",
      [
          {"primary": False, "type": "WindowsAzureActiveDirectoryRole", "display": "Admin",
           "value": "Admin"},
          {"primary": False, "type": "WindowsAzureActiveDirectoryRole", "display": "User",
           "value": "User"},
      ],
      {"appRoleAssignments": [{"displayName": "Admin", "value": "Admin"},
                              {"displayName": "User", "value": "User"}]}),
    c("AppRoleAssignmentsComplex", "role names given as plain strings",
      "AppRoleAssignmentsComplex([appRoleAssignments])",
      [{"primary": False, "type": "WindowsAzureActiveDirectoryRole", "display": "Admin",
        "value": "Admin"}],
      {"appRoleAssignments": ["Admin"]}),
    c("AppRoleAssignmentsComplex", "no assignments: null",
      "AppRoleAssignmentsComplex([appRoleAssignments])", None),
    c("SingleAppRoleAssignment", "converts the appRoleAssignments object into one role name",
      "SingleAppRoleAssignment([appRoleAssignments])", "Admin",
      {"appRoleAssignments": ["Admin"]}),
    c("SingleAppRoleAssignment", "customize: {id, value 25, displayName Role1234}",
      "SingleAppRoleAssignment([appRoleAssignments])", "Role1234",
      {"appRoleAssignments": [{"id": "06b07648-ecfe-589f-9d2f-6325724a46ee", "value": "25",
                               "displayName": "Role1234"}]}),
    c("SingleAppRoleAssignment", "no assignment: null",
      "SingleAppRoleAssignment([appRoleAssignments])", None),
    # --- BitAnd ----------------------------------------------------------------------------
    c("BitAnd", "BitAnd(&HF, &HF7) returns 7", "BitAnd(&HF, &HF7)", 7),
    c("BitAnd", "1 only if both corresponding bits are 1", "BitAnd(12, 10)", 8),
    c("BitAnd", "returns 0 in all cases except ...", "BitAnd(&HF0, &H0F)", 0),
    c("BitAnd", "Num parameters from attributes", "BitAnd([uac], 2)", 2, {"uac": 514}),
    # --- CBool -----------------------------------------------------------------------------
    c("CBool", "Returns True if both attributes have the same value",
      "CBool([attribute1] = [attribute2])", True, {"attribute1": "a", "attribute2": "a"}),
    c("CBool", "else it returns False",
      "CBool([attribute1] = [attribute2])", False, {"attribute1": "a", "attribute2": "b"}),
    c("CBool", "non-zero value -> True", "CBool(5)", True),
    c("CBool", "non-zero value -> True (negative)", "CBool(-1)", True),
    c("CBool", "zero -> False", "CBool(0)", False),
    c("CBool", "a numeric attribute", "CBool([n])", True, {"n": "2"}),
    # --- CDate -----------------------------------------------------------------------------
    c("CDate", 'Example 1: "2020-03-16-07:00" -> "3/16/2020 7:00:00 AM"',
      "CDate([StatusHireDate])", "3/16/2020 7:00:00 AM", {"StatusHireDate": "2020-03-16-07:00"}),
    c("CDate", 'Example 2: "2021-06-30+08:00" -> "6/29/2021 4:00:00 PM"',
      'CDate("2021-06-30+08:00")', "6/29/2021 4:00:00 PM"),
    c("CDate", 'Example 3: "2009-06-15T01:45:30-07:00" -> "6/15/2009 8:45:30 AM"',
      'CDate("2009-06-15T01:45:30-07:00")', "6/15/2009 8:45:30 AM"),
    c("CDate", "Connect: CDate(\"2013-01-10 4:00 PM -8\") is 2013-01-11 12:00 AM",
      'CDate("2013-01-10 4:00 PM -8")', "1/11/2013 12:00:00 AM"),
    c("CDate", "always UTC, format M/d/yyyy h:mm:ss tt", 'CDate("2021-07-02T15:33:38Z")',
      "7/2/2021 3:33:38 PM"),
    c("CDate", "a date alone is midnight UTC", 'CDate("2021-08-24")', "8/24/2021 12:00:00 AM"),
    c("CDate", "reads its own output format back", 'CDate("7/2/2021 3:33:38 PM")',
      "7/2/2021 3:33:38 PM"),
    c("CDate", "null in, null out", "CDate([missing])", None),
    # --- Coalesce --------------------------------------------------------------------------
    c("Coalesce", "mail NULL, userPrincipalName John.Doe@contoso.com -> John.Doe@contoso.com",
      "Coalesce([mail],[userPrincipalName])", "John.Doe@contoso.com",
      {"userPrincipalName": "John.Doe@contoso.com"}),
    c("Coalesce", "mail present flows mail", "Coalesce([mail],[userPrincipalName])",
      "m@contoso.com", {"mail": "m@contoso.com", "userPrincipalName": "u@contoso.com"}),
    c("Coalesce", "Returns the first source value that isn't NULL",
      'Coalesce([a], [b], [c], "default")', "B", {"b": "B", "c": "C"}),
    c("Coalesce", "all NULL and defaultValue present: defaultValue",
      'Coalesce([a], [b], "default")', "default"),
    c("Coalesce", 'defaultValue can be empty string ("")', 'Coalesce([a], [b], "")', ""),
    c("Coalesce", "all NULL and no defaultValue: NULL", "Coalesce([a], [b])", None),
    # --- ConvertToBase64 -------------------------------------------------------------------
    c("ConvertToBase64", 'Returns "SABlAGwAbABvACAAdwBvAHIAbABkACEA"',
      'ConvertToBase64("Hello world!")', "SABlAGwAbABvACAAdwBvAHIAbABkACEA"),
    c("ConvertToBase64", "a Unicode (UTF-16LE) base64 string", 'ConvertToBase64("é")', "6QA="),
    c("ConvertToBase64", "from an attribute", "ConvertToBase64([s])", "QQA=", {"s": "A"}),
    # --- ConvertToUTF8Hex ------------------------------------------------------------------
    c("ConvertToUTF8Hex", "Returns 48656C6C6F20776F726C6421",
      'ConvertToUTF8Hex("Hello world!")', "48656C6C6F20776F726C6421"),
    c("ConvertToUTF8Hex", "UTF8 Hex encoded value (two bytes)", 'ConvertToUTF8Hex("é")', "C3A9"),
    # --- Count -----------------------------------------------------------------------------
    c("Count", "the number of elements in a multi-valued attribute",
      "Count([proxyAddresses])", 3, ADDRESSES),
    c("Count", "an empty multi-valued attribute", "Count([proxyAddresses])", 0,
      {"proxyAddresses": []}),
    c("Count", "an absent attribute has no elements", "Count([proxyAddresses])", 0),
    # --- CStr ------------------------------------------------------------------------------
    c("CStr", 'Returns "cn=Joe,dc=contoso,dc=com"', "CStr([dn])", "cn=Joe,dc=contoso,dc=com",
      {"dn": "cn=Joe,dc=contoso,dc=com"}),
    c("CStr", "Can be a numeric value", "CStr(123)", "123"),
    c("CStr", "a numeric attribute", "CStr([employeeId])", "42", {"employeeId": 42}),
    c("CStr", "or Boolean", "CStr(IsPresent([x]))", "True", {"x": "y"}),
    c("CStr", "Boolean false", "CStr(IsPresent([x]))", "False"),
    # --- DateAdd ---------------------------------------------------------------------------
    c("DateAdd", "Add 7 days to hire date -> 3/23/2012 7:00:00 AM",
      'DateAdd("d", 7, CDate([StatusHireDate]))', "3/23/2012 7:00:00 AM", HIRE),
    c("DateAdd", "ten days before hire date -> 3/6/2012 7:00:00 AM",
      'DateAdd("d", -10, CDate([StatusHireDate]))', "3/6/2012 7:00:00 AM", HIRE),
    c("DateAdd", "Add two weeks -> 3/30/2012 7:00:00 AM",
      'DateAdd("ww", 2, CDate([StatusHireDate]))', "3/30/2012 7:00:00 AM", HIRE),
    c("DateAdd", "Add ten months -> 1/16/2013 7:00:00 AM",
      'DateAdd("m", 10, CDate([StatusHireDate]))', "1/16/2013 7:00:00 AM", HIRE),
    c("DateAdd", "Add two years -> 3/16/2014 7:00:00 AM",
      'DateAdd("yyyy", 2, CDate([StatusHireDate]))', "3/16/2014 7:00:00 AM", HIRE),
    c("DateAdd", "h Hour", 'DateAdd("h", 5, CDate([StatusHireDate]))', "3/16/2012 12:00:00 PM",
      HIRE),
    c("DateAdd", "n Minute", 'DateAdd("n", 90, CDate([StatusHireDate]))', "3/16/2012 8:30:00 AM",
      HIRE),
    c("DateAdd", "s Second", 'DateAdd("s", -30, CDate([StatusHireDate]))',
      "3/16/2012 6:59:30 AM", HIRE),
    c("DateAdd", "Connect: DateAdd(\"m\", 3, CDate(\"2001-01-01\")) is 2001-04-01",
      'DateAdd("m", 3, CDate("2001-01-01"))', "4/1/2001 12:00:00 AM"),
    c("DateAdd", "a month added to Jan 31 ends on the last day of February",
      'DateAdd("m", 1, CDate("2021-01-31"))', "2/28/2021 12:00:00 AM"),
    c("DateAdd", "To get system time in UTC, use the Now function",
      'DateAdd("d", 1, Now())', "8/26/2021 5:41:18 PM"),
    # --- DateDiff --------------------------------------------------------------------------
    c("DateDiff", "Positive difference in days: 2021-08-18+08:00 .. 2021-08-31+08:00 -> 13",
      'DateDiff("d", CDate("2021-08-18+08:00"), CDate("2021-08-31+08:00"))', 13),
    c("DateDiff", "Negative difference in days: 8/25/2021 5:41:18 PM .. 2012-03-16-07:00 -> -3449",
      'DateDiff("d", Now(), CDate([StatusHireDate]))', -3449, HIRE),
    c("DateDiff", "the same row with date1 as text",
      'DateDiff("d", CDate("8/25/2021 5:41:18 PM"), CDate([StatusHireDate]))', -3449, HIRE),
    c("DateDiff", "Difference in weeks -> -493",
      'DateDiff("ww", Now(), CDate([StatusHireDate]))', -493, HIRE),
    c("DateDiff", "Difference in months -> -113",
      'DateDiff("m", Now(), CDate([StatusHireDate]))', -113, HIRE),
    c("DateDiff", "Difference in years -> -9",
      'DateDiff("yyyy", Now(), CDate([StatusHireDate]))', -9, HIRE),
    c("DateDiff", "Difference when both dates are same -> 0",
      'DateDiff("d", CDate("2021-08-31+08:00"), CDate("2021-08-31+08:00"))', 0),
    c("DateDiff", "Difference in hours: 2021-08-24 .. 2021-08-25 -> 24",
      'DateDiff("h", CDate("2021-08-24"), CDate("2021-08-25"))', 24),
    c("DateDiff", "Difference in minutes -> 1440",
      'DateDiff("n", CDate("2021-08-24"), CDate("2021-08-25"))', 1440),
    c("DateDiff", "Difference in seconds -> 86400",
      'DateDiff("s", CDate("2021-08-24"), CDate("2021-08-25"))', 86400),
    c("DateDiff", "a negative number if date2 < date1",
      'DateDiff("h", CDate("2021-08-25"), CDate("2021-08-24"))', -24),
    c("DateDiff", "Example 2: Active 1, hire date within five days -> True",
      'Switch([Active], , "1", IIF(DateDiff("d", Now(), CDate([StatusHireDate])) > 5, "False",'
      ' "True"), "0", "False")', "True",
      {"Active": "1", "StatusHireDate": "2021-08-28-07:00"}),
    c("DateDiff", "Example 2: Active 1, hire date more than five days away -> False",
      'Switch([Active], , "1", IIF(DateDiff("d", Now(), CDate([StatusHireDate])) > 5, "False",'
      ' "True"), "0", "False")', "False",
      {"Active": "1", "StatusHireDate": "2021-09-30-07:00"}),
    c("DateDiff", "Example 2: Active 0 -> False",
      'Switch([Active], , "1", IIF(DateDiff("d", Now(), CDate([StatusHireDate])) > 5, "False",'
      ' "True"), "0", "False")', "False",
      {"Active": "0", "StatusHireDate": "2021-08-28-07:00"}),
    # --- DateFromNum -----------------------------------------------------------------------
    c("DateFromNum", "DateFromNum(129699324000000000): January 1, 2012 at 11:00PM",
      "DateFromNum(129699324000000000)", "1/1/2012 11:00:00 PM"),
    c("DateFromNum", "DateFromNum([lastLogonTimestamp])", "DateFromNum([lastLogonTimestamp])",
      "1/1/2012 11:00:00 PM", {"lastLogonTimestamp": "129699324000000000"}),
    c("DateFromNum", "an absent attribute", "DateFromNum([lastLogonTimestamp])", None),
    # --- FormatDateTime --------------------------------------------------------------------
    c("FormatDateTime", '"20150123105347.1Z" with "yyyyMMddHHmmss.fZ" -> "2015-01-23"',
      'FormatDateTime([extensionAttribute1], , "yyyyMMddHHmmss.fZ", "yyyy-MM-dd")',
      "2015-01-23", {"extensionAttribute1": "20150123105347.1Z"}),
    c("FormatDateTime", "Workday ContractEndDate 2020-12-31-08:00 with yyyy-MM-ddzzz",
      'FormatDateTime([ContractEndDate], ,"yyyy-MM-ddzzz", "yyyy-MM-dd")', "2020-12-31",
      {"ContractEndDate": "2020-12-31-08:00"}),
    c("FormatDateTime", "SuccessFactors endDate M/d/yyyy hh:mm:ss tt",
      'FormatDateTime([endDate], ,"M/d/yyyy hh:mm:ss tt","yyyy-MM-dd")', "2020-12-31",
      {"endDate": "12/31/2020 09:00:00 AM"}),
    c("FormatDateTime", "an offset in the source is converted to UTC",
      'FormatDateTime([d], , "yyyy-MM-ddzzz", "yyyy-MM-dd HH:mm")', "2020-03-16 07:00",
      {"d": "2020-03-16-07:00"}),
    c("FormatDateTime", ".NET custom format strings for the output",
      'FormatDateTime([d], , "yyyyMMdd", "dddd, MMMM d, yyyy")', "Wednesday, June 30, 2021",
      {"d": "20210630"}),
    c("FormatDateTime", "12-hour clock with AM/PM designator",
      'FormatDateTime([d], , "yyyy-MM-ddTHH:mm:ss", "M/d/yyyy h:mm:ss tt")',
      "6/30/2021 3:04:05 PM", {"d": "2021-06-30T15:04:05"}),
    c("FormatDateTime", "dateTimeStyles given explicitly",
      'FormatDateTime([d], "AllowLeadingWhite, AllowTrailingWhite", "yyyy-MM-dd", "yyyyMMdd")',
      "20210630", {"d": "  2021-06-30 "}),
    c("FormatDateTime", "dateTimeStyles RoundtripKind (the default)",
      'FormatDateTime([d], "RoundtripKind", "yyyy-MM-dd", "MMM yy")', "Jun 21",
      {"d": "2021-06-30"}),
    c("FormatDateTime", "the earlier three-argument form (source, inputFormat, outputFormat)",
      'FormatDateTime([extensionAttribute1], "yyyyMMddHHmmss.fZ", "yyyy-MM-dd")',
      "2015-01-23", {"extensionAttribute1": "20150123105347.1Z"}),
    c("FormatDateTime", "Connect: FormatDateTime(CDate(\"12/25/2007\"),\"yyyy-MM-dd\")",
      'FormatDateTime(CDate("12/25/2007"),"yyyy-MM-dd")', "2007-12-25"),
    c("FormatDateTime", "Connect: DateFromNum then \"yyyyMMddHHmmss.0Z\"",
      'FormatDateTime(DateFromNum(129699324000000000),"yyyyMMddHHmmss.0Z")',
      "20120101230000.0Z"),
    c("FormatDateTime", "a DateTime source (CDate) needs no inputFormat",
      'FormatDateTime(CDate([StatusHireDate]), , , "yyyy-MM-dd")', "2012-03-16", HIRE),
    c("FormatDateTime", "null in, null out",
      'FormatDateTime([missing], , "yyyy-MM-dd", "yyyyMMdd")', None),
    # --- IgnoreFlowIfNullOrEmpty ------------------------------------------------------------
    c("IgnoreFlowIfNullOrEmpty", "Example 1: drops department if it's null",
      "IgnoreFlowIfNullOrEmpty([department])", IGNORED),
    c("IgnoreFlowIfNullOrEmpty", "Example 1: ... or empty",
      "IgnoreFlowIfNullOrEmpty([department])", IGNORED, {"department": ""}),
    c("IgnoreFlowIfNullOrEmpty", "Example 1: a present department flows",
      "IgnoreFlowIfNullOrEmpty([department])", "Sales", {"department": "Sales"}),
    c("IgnoreFlowIfNullOrEmpty", "Example 2: prefix matches no key: Switch returns \"\", dropped",
      'IgnoreFlowIfNullOrEmpty(Switch([prefix], "", "3443", "Dr.", "3444", "Prof.", "3445",'
      ' "Prof. Dr."))', IGNORED, {"prefix": "1000"}),
    c("IgnoreFlowIfNullOrEmpty", "Example 2: prefix 3445 -> Prof. Dr.",
      'IgnoreFlowIfNullOrEmpty(Switch([prefix], "", "3443", "Dr.", "3444", "Prof.", "3445",'
      ' "Prof. Dr."))', "Prof. Dr.", {"prefix": "3445"}),
    # --- IIF -------------------------------------------------------------------------------
    c("IIF", 'country="USA": target gets country', 'IIF([country]="USA",[country],[department])',
      "USA", {"country": "USA", "department": "Sales"}),
    c("IIF", "else target gets department", 'IIF([country]="USA",[country],[department])',
      "Sales", {"country": "FR", "department": "Sales"}),
    c("IIF", "AND via nested IIF: USA and CA -> True",
      'IIF([country]="USA",IIF([state]="CA","True","False"),"False")', "True",
      {"country": "USA", "state": "CA"}),
    c("IIF", "AND via nested IIF: USA and WA -> False",
      'IIF([country]="USA",IIF([state]="CA","True","False"),"False")', "False",
      {"country": "USA", "state": "WA"}),
    c("IIF", "OR via nested IIF: FR and CA -> True",
      'IIF([country]="USA","True",IIF([state]="CA","True","False"))', "True",
      {"country": "FR", "state": "CA"}),
    c("IIF", "OR via nested IIF: FR and WA -> False",
      'IIF([country]="USA","True",IIF([state]="CA","True","False"))', "False",
      {"country": "FR", "state": "WA"}),
    c("IIF", "not equal to (<>)", 'IIF([country]<>"USA","abroad","home")', "abroad",
      {"country": "FR"}),
    c("IIF", "greater than (>)", 'IIF([level]>5,"senior","junior")', "senior", {"level": "7"}),
    c("IIF", "greater than equal to (>=)", 'IIF([level]>=7,"senior","junior")', "senior",
      {"level": 7}),
    c("IIF", "less than (<)", 'IIF([level]<5,"junior","senior")', "junior", {"level": "3"}),
    c("IIF", "less than equal to (<=)", 'IIF([level]<=3,"junior","senior")', "junior",
      {"level": "3"}),
    c("IIF", 'Resolution example: IIF([companyName] = "Company B", "B", ...)',
      'IIF([companyName] = "Company A", "A", IIF([companyName] = "Company B", "B", "External"))',
      "B", {"companyName": "Company B"}),
    c("IIF", "Resolution example: no match -> External",
      'IIF([companyName] = "Company A", "A", IIF([companyName] = "Company B", "B", "External"))',
      "External", {"companyName": "Company C"}),
    c("IIF", "a condition that is a function", 'IIF(IsPresent([country]),[country],"Other")',
      "FR", {"country": "FR"}),
    c("IIF", 'Recommended workaround: Switch([country],[country],"","Other"), country empty',
      'Switch([country],[country],"","Other")', "Other", {"country": ""}),
    c("IIF", "Recommended workaround, country absent", 'Switch([country],[country],"","Other")',
      "Other"),
    c("IIF", "Recommended workaround, country present", 'Switch([country],[country],"","Other")',
      "FR", {"country": "FR"}),
    # --- InStr -----------------------------------------------------------------------------
    c("InStr", 'InStr("The quick brown fox","quick") evaluates to 5',
      'InStr("The quick brown fox","quick")', 5),
    c("InStr", 'InStr("repEated","e",3,vbBinaryCompare) evaluates to 7',
      'InStr("repEated","e",3,vbBinaryCompare)', 7),
    c("InStr", "vbTextCompare compares without case", 'InStr("repEated","e",3,vbTextCompare)', 4),
    c("InStr", "vbBinaryCompare is case-sensitive", 'InStr("ABC","b",1,vbBinaryCompare)', 0),
    c("InStr", "Connect: returns 0 if not found", 'InStr("The quick brown fox","slow")', 0),
    c("InStr", "start: starting position", 'InStr("abcabc","c",4)', 6),
    # --- IsNull / IsNullOrEmpty / IsPresent / IsString -------------------------------------
    c("IsNull", "Returns True if the attribute isn't present", "IsNull([displayName])", True),
    c("IsNull", "a present attribute", "IsNull([displayName])", False, {"displayName": "J"}),
    c("IsNull", "an empty string is not Null", "IsNull([displayName])", False,
      {"displayName": ""}),
    c("IsNullOrEmpty", "True if the attribute isn't present", "IsNullOrEmpty([displayName])",
      True),
    c("IsNullOrEmpty", "... or is an empty string", "IsNullOrEmpty([displayName])", True,
      {"displayName": ""}),
    c("IsNullOrEmpty", "a present value", "IsNullOrEmpty([displayName])", False,
      {"displayName": "J"}),
    c("IsPresent", "a string that isn't Null and isn't empty", "IsPresent([displayName])", True,
      {"displayName": "J"}),
    c("IsPresent", "the inverse of IsNullOrEmpty (empty)", "IsPresent([displayName])", False,
      {"displayName": ""}),
    c("IsPresent", "the inverse of IsNullOrEmpty (absent)", "IsPresent([displayName])", False),
    c("IsPresent", "reference example, provisioning Switch semantics applied literally",
      "Switch(IsPresent([directManager]),[directManager], IsPresent([skiplevelManager]),"
      "[skiplevelManager], IsPresent([director]),[director])", "skip",
      {"directManager": "dm", "skiplevelManager": "skip"}),
    c("IsString", "can be evaluated to a string type", "IsString([displayName])", True,
      {"displayName": "J"}),
    c("IsString", "a string constant", 'IsString("123")', True),
    c("IsString", "a number is not a string", "IsString([n])", False, {"n": 5}),
    c("IsString", "null is not a string", "IsString([displayName])", False),
    # --- Item ------------------------------------------------------------------------------
    c("Item", "Item([proxyAddresses], 1) returns the first item", "Item([proxyAddresses], 1)",
      "SMTP:john@contoso.com", ADDRESSES),
    c("Item", "1-based index", "Item([proxyAddresses], 2)", "smtp:jd@contoso.com", ADDRESSES),
    c("Item", "from Split's multi-valued result", 'Item(Split("a,b,c", ","), 3)', "c"),
    # --- Join ------------------------------------------------------------------------------
    c("Join", "combines multiple source values, each separated by separator",
      'Join(", ", [surname], [givenName])', "Doe, John", {"givenName": "John", "surname": "Doe"}),
    c("Join", 'Add a comma: Join(", ", "", [surname], [givenName]) -> "Doe, John"',
      'Join(", ", "", [surname], [givenName])', "Doe, John",
      {"givenName": "John", "surname": "Doe"}),
    c("Join", "a multi-value attribute: every value is joined",
      'Join(",", [proxyAddresses])', "SMTP:john@contoso.com,smtp:jd@contoso.com,x500:/o=x",
      ADDRESSES),
    c("Join", "multi-valued and single values together", 'Join("|", "a", [m], "z")',
      "a|x|y|z", {"m": ["x", "y"]}),
    c("Join", 'Can be "" if no separator is required', 'Join("", "a", "b", "c")', "abc"),
    c("Join", "a null source is skipped", 'Join(".", [givenName], [middle], [surname])',
      "John.Doe", {"givenName": "John", "surname": "Doe"}),
    c("Join", "PCase(Join(\" \",[firstName],[lastName])) -> Gregory James",
      'PCase(Join(" ",[firstName],[lastName]))', "Gregory James",
      {"firstName": "GREGORY", "lastName": "JAMES"}),
    # --- Left ------------------------------------------------------------------------------
    c("Left", 'Left("John Doe", 3) returns "Joh"', 'Left("John Doe", 3)', "Joh"),
    c("Left", "If numChars = 0, return empty string", 'Left("John Doe", 0)', ""),
    c("Left", "If numChars < 0, return input string", 'Left("John Doe", -1)', "John Doe"),
    c("Left", "If string is null, return empty string", "Left([missing], 3)", ""),
    c("Left", "fewer characters than numChars: the string itself", 'Left("Jo", 5)', "Jo"),
    # --- Mid -------------------------------------------------------------------------------
    c("Mid", "First character has an index of 1", 'Mid("John Doe", 1, 4)', "John"),
    c("Mid", "Connect: Mid(\"John Doe\", 3, 5) returns \"hn Do\"", 'Mid("John Doe", 3, 5)',
      "hn Do"),
    c("Mid", "length ends outside source: substring from start until the end",
      'Mid("John Doe", 6, 999)', "Doe"),
    c("Mid", "SelectUniqueValue example: Mid([PreferredFirstName], 1, 2)",
      "Mid([PreferredFirstName], 1, 2)", "Jo", {"PreferredFirstName": "John"}),
    c("Mid", "Connect: If string is null, return empty string", "Mid([missing], 1, 2)", ""),
    c("Mid", "Connect: If numChars = 0, return empty string", 'Mid("John", 2, 0)', ""),
    # --- NormalizeDiacritics (the full table is checked separately) ------------------------
    c("NormalizeDiacritics", 'INPUT "Zoë" OUTPUT "Zoe"', "NormalizeDiacritics([givenName])",
      "Zoe", {"givenName": "Zoë"}),
    c("NormalizeDiacritics", "ß -> ss, æ -> ae, ø -> oe, Æ -> AE, Ø -> OE",
      'NormalizeDiacritics("Jørgen Ærø Straße Cæcilie Øster")',
      "Joergen AEroe Strasse Caecilie OEster"),
    c("NormalizeDiacritics", "characters without diacritics are kept",
      'NormalizeDiacritics("John Smith-Jones")', "John Smith-Jones"),
    c("NormalizeDiacritics", "Jéssica Smith (SelectUniqueValue note)",
      'NormalizeDiacritics("Jéssica Smith")', "Jessica Smith"),
    # --- Not -------------------------------------------------------------------------------
    c("Not", "If source value is True, returns False", 'Not("True")', False),
    c("Not", 'Expected source values are "True" or "False"', 'Not("False")', True),
    c("Not", "Otherwise, returns True", 'Not("maybe")', True),
    c("Not", "a boolean from a function", "Not(IsNull([x]))", False),
    c("Not", "an attribute", "Not([accountEnabled])", False, {"accountEnabled": "True"}),
    # --- Now -------------------------------------------------------------------------------
    c("Now", "current UTC DateTime in the format M/d/yyyy h:mm:ss tt", "Now()",
      "8/25/2021 5:41:18 PM"),
    # --- NumFromDate -----------------------------------------------------------------------
    c("NumFromDate", "Workday example: ContractEndDate 2020-12-31-08:00",
      'NumFromDate(Join("", FormatDateTime([ContractEndDate], ,"yyyy-MM-ddzzz", "yyyy-MM-dd"),'
      ' " 23:59:59-08:00"))', 132539615990000000, {"ContractEndDate": "2020-12-31-08:00"}),
    c("NumFromDate", "SuccessFactors example: endDate M/d/yyyy hh:mm:ss tt",
      'NumFromDate(Join("",FormatDateTime([endDate], ,"M/d/yyyy hh:mm:ss tt","yyyy-MM-dd"),'
      '" 23:59:59-08:00"))', 132539615990000000, {"endDate": "12/31/2020 09:00:00 AM"}),
    c("NumFromDate", "Connect: NumFromDate(CDate(\"2012-01-01 23:00:00\"))",
      'NumFromDate(CDate("2012-01-01 23:00:00"))', 129699324000000000),
    c("NumFromDate", "Date time string in ISO 8601 format", 'NumFromDate("2012-01-01T23:00:00Z")',
      129699324000000000),
    c("NumFromDate", "the inverse of DateFromNum", "NumFromDate(DateFromNum([n]))",
      129699324000000000, {"n": 129699324000000000}),
    # --- PCase -----------------------------------------------------------------------------
    c("PCase", '"PABLO GONSALVES (SECOND)" -> "Pablo Gonsalves (Second)"', "PCase([firstName])",
      "Pablo Gonsalves (Second)", {"firstName": "PABLO GONSALVES (SECOND)"}),
    c("PCase", "PCase([lastName],\" '-\"): \"PINTO-DE'SILVA\" -> \"Pinto-De'Silva\"",
      "PCase([lastName],\" '-\")", "Pinto-De'Silva", {"lastName": "PINTO-DE'SILVA"}),
    c("PCase", "Connect: PCase(\"TEsT\") returns \"Test\"", 'PCase("TEsT")', "Test"),
    c("PCase", "default separators: ConnectorPunctuation (underscore), DashPunctuation",
      'PCase("john_smith-jones")', "John_Smith-Jones"),
    c("PCase", "default separators: quotes and OtherPunctuation",
      'PCase("\\"big\\" deal!wow,ok.fine")', '"Big" Deal!Wow,Ok.Fine'),
    c("PCase", "default separators: MathSymbol and CurrencySymbol", 'PCase("a+b<c$d")',
      "A+B<C$D"),
    c("PCase", "default: an apostrophe is not a separator", 'PCase("O\'NEIL")', "O'neil"),
    c("PCase", "only the given wordSeparators separate words", 'PCase("JOHN SMITH-JONES", "-")',
      "John smith-Jones"),
    c("PCase", "wordSeparators with space", 'PCase("JOHN SMITH-JONES", " ")', "John Smith-jones"),
    # --- Redact ----------------------------------------------------------------------------
    c("Redact", "Example 1: the value flows; only the provisioning logs show [Redact]",
      "Redact([userPrincipalName])", "john@contoso.com",
      {"userPrincipalName": "john@contoso.com"}),
    c("Redact", "Example 2: Redact a string", 'Redact("StringToBeRedacted")',
      "StringToBeRedacted"),
    # --- RemoveDuplicates ------------------------------------------------------------------
    c("RemoveDuplicates", "each value is unique", "RemoveDuplicates([proxyAddresses])",
      ["smtp:a@contoso.com", "smtp:b@contoso.com"],
      {"proxyAddresses": ["smtp:a@contoso.com", "smtp:b@contoso.com", "smtp:a@contoso.com"]}),
    c("RemoveDuplicates", "comparison is case-sensitive", "RemoveDuplicates([p])",
      ["SMTP:a@contoso.com", "smtp:a@contoso.com"],
      {"p": ["SMTP:a@contoso.com", "smtp:a@contoso.com"]}),
    # --- Replace ---------------------------------------------------------------------------
    c("Replace", "Example 1: Product Developer -> Software Engineer",
      'Replace([BusinessTitle],"Product Developer", , , "Software Engineer", , )',
      "Software Engineer", {"BusinessTitle": "Product Developer"}),
    c("Replace", "Example 2: template <username>@contoso.com with jsmith",
      'Replace([UserID],"<username>", , , , , "<username>@contoso.com")',
      "jsmith@contoso.com", {"UserID": "jsmith"}),
    c("Replace", "Example 3: +91 9998887777 -> 9998887777 (pattern as the docs show it)",
      'Replace([telephoneNumber], , "\\\\+(?<isdCode>\\\\d* )(?<phoneNumber>\\\\d{10})", ,'
      ' "${phoneNumber}", , )', "9998887777", {"telephoneNumber": "+91 9998887777"}),
    c("Replace", "Example 3 with single backslashes",
      'Replace([telephoneNumber], , "\\+(?<isdCode>\\d* )(?<phoneNumber>\\d{10})", ,'
      ' "${phoneNumber}", , )', "9998887777", {"telephoneNumber": "+91 9998887777"}),
    # The reference prints 19998887777, but "[()\s-]+" cannot match the "+": the pattern's
    # own semantics keep it.
    c("Replace", "Example 3: removes parenthesis, dashes and spaces (keeps the +)",
      'Replace([mobile], , "[()\\\\s-]+", , "", , )', "+19998887777",
      {"mobile": "+1 (999) 888-7777"}),
    c("Replace", "Example 4: street number 545 -> 888",
      'Replace([AddressLineData], ,"(?<streetNumber>^\\\\d*)","streetNumber", "888", , )',
      "888 Tremont Street", {"AddressLineData": "545 Tremont Street"}),
    c("Replace", "Example 4: domain suffix replaced with empty string",
      'Replace([userPrincipalName], , "(?<Suffix>@(.)*)", "Suffix", "", , )', "jsmith",
      {"userPrincipalName": "jsmith@contoso.com"}),
    c("Replace", "Example 5: telephoneNumber empty: phoneNumber group from mobile",
      'Replace([telephoneNumber], , "\\\\+(?<isdCode>\\\\d* )(?<phoneNumber>\\\\d{10})",'
      ' "phoneNumber" , , [mobile], )', "8887779999",
      {"telephoneNumber": "", "mobile": "+91 8887779999"}),
    c("Replace", "Example 5: If source has a value, source is returned",
      'Replace([telephoneNumber], , "\\\\+(?<isdCode>\\\\d* )(?<phoneNumber>\\\\d{10})",'
      ' "phoneNumber" , , [mobile], )', "+1 4255550100",
      {"telephoneNumber": "+1 4255550100", "mobile": "+91 8887779999"}),
    c("Replace", "Example 6: john_doe72 -> 72", 'Replace([mailNickname], , "[a-zA-Z_]*", , "", , )',
      "72", {"mailNickname": "john_doe72"}),
    c("Replace", "Strip known domain name: john.doe@contoso.com -> john.doe",
      'Replace([mail], "@contoso.com", , ,"", ,)', "john.doe",
      {"mail": "john.doe@contoso.com"}),
    c("Replace", "Replaces values in a case-sensitive manner",
      'Replace([s], "abc", , , "x", , )', "ABC x x", {"s": "ABC abc abc"}),
    # The reference's output comes from another GUID; this is what its expression gives for
    # the input it shows.
    c("Replace", "objectId -> 1000 + UTF8 hex without letters",
      'Join("", 1000, Replace(ConvertToUTF8Hex([objectId]), , "[a-zA-Z_]*", , "", , ))',
      "100030306161303061612626231312636332322646433332343465653434656534346565",
      {"objectId": "00aa00aa-bb11-cc22-dd33-44ee44ee44ee"}),
    c("Replace", "Connect's three-argument form Replace(string, OldValue, NewValue)",
      'Replace([address], "Street", "St")', "1 Main St", {"address": "1 Main Street"}),
    # --- SelectUniqueValue -----------------------------------------------------------------
    c("SelectUniqueValue", "John Smith -> John.Smith@contoso.com if it doesn't already exist",
      'SelectUniqueValue(\n'
      '    Join("@", NormalizeDiacritics(StripSpaces(Join(".",  [PreferredFirstName],'
      ' [PreferredLastName]))), "contoso.com"),\n'
      '    Join("@", NormalizeDiacritics(StripSpaces(Join(".",  Mid([PreferredFirstName], 1, 1),'
      ' [PreferredLastName]))), "contoso.com"),\n'
      '    Join("@", NormalizeDiacritics(StripSpaces(Join(".",  Mid([PreferredFirstName], 1, 2),'
      ' [PreferredLastName]))), "contoso.com")\n)',
      "John.Smith@contoso.com", {"PreferredFirstName": "John", "PreferredLastName": "Smith"}),
    # --- Split -----------------------------------------------------------------------------
    c("Split", '"PermissionSetOne, PermissionSetTwo" -> ["PermissionSetOne", "PermissionSetTwo"]',
      'Split([extensionAttribute5], ",")', ["PermissionSetOne", "PermissionSetTwo"],
      {"extensionAttribute5": "PermissionSetOne, PermissionSetTwo"}),
    c("Split", "Connect: two SMTP addresses -> 2 elements",
      'Split("SMTP:john.doe@contoso.com,smtp:jd@contoso.com",",")',
      ["SMTP:john.doe@contoso.com", "smtp:jd@contoso.com"]),
    c("Split", "no delimiter in the string: one value", 'Split("one", ",")', ["one"]),
    c("Split", "Count of a Split", 'Count(Split("a;b;c", ";"))', 3),
    # --- StripSpaces -----------------------------------------------------------------------
    c("StripSpaces", 'Removes all space (" ") characters', 'StripSpaces(" John  Smith ")',
      "JohnSmith"),
    c("StripSpaces", "only spaces: a tab stays", 'StripSpaces("a\tb c")', "a\tbc"),
    # --- Switch ----------------------------------------------------------------------------
    c("Switch", "state QLD -> Australia/Brisbane",
      'Switch([state], "Australia/Sydney", "NSW", "Australia/Sydney","QLD", "Australia/Brisbane",'
      ' "SA", "Australia/Adelaide")', "Australia/Brisbane", {"state": "QLD"}),
    c("Switch", "no key matches: defaultValue Australia/Sydney",
      'Switch([state], "Australia/Sydney", "NSW", "Australia/Sydney","QLD", "Australia/Brisbane",'
      ' "SA", "Australia/Adelaide")', "Australia/Sydney", {"state": "WA"}),
    c("Switch", "case-sensitive comparison: qld is not QLD",
      'Switch([state], "Australia/Sydney", "NSW", "Australia/Sydney","QLD", "Australia/Brisbane",'
      ' "SA", "Australia/Adelaide")', "Australia/Sydney", {"state": "qld"}),
    c("Switch", 'NOTE: Switch(ToLower([statusFlag]), "0", "true", "1", "false", "0") with TRUE',
      'Switch(ToLower([statusFlag]), "0", "true", "1", "false", "0")', "1",
      {"statusFlag": "TRUE"}),
    c("Switch", "NOTE example with False", 'Switch(ToLower([statusFlag]), "0", "true", "1",'
      ' "false", "0")', "0", {"statusFlag": "False"}),
    c("Switch", 'CAUTION: if statusFlag is empty, the Switch function returns the value 0',
      'Switch([statusFlag], "Default Value", "true", "1", "", "0")', "0", {"statusFlag": ""}),
    c("Switch", "CAUTION example with statusFlag absent",
      'Switch([statusFlag], "Default Value", "true", "1", "", "0")', "0"),
    c("Switch", "CAUTION example with an unknown value",
      'Switch([statusFlag], "Default Value", "true", "1", "", "0")', "Default Value",
      {"statusFlag": "x"}),
    c("Switch", "defaultValue is optional: left empty, null",
      'Switch([state], , "NSW", "Australia/Sydney")', None, {"state": "WA"}),
    # --- ToLower / ToUpper -----------------------------------------------------------------
    c("ToLower", "John Smith -> john.smith@contoso.com",
      'ToLower(Join("@", NormalizeDiacritics(StripSpaces(Join(".",  [PreferredFirstName],'
      ' [PreferredLastName]))), "contoso.com"))', "john.smith@contoso.com",
      {"PreferredFirstName": "John", "PreferredLastName": "Smith"}),
    c("ToLower", "Connect LCase(\"TeSt\") returns \"test\"", 'ToLower("TeSt")', "test"),
    c("ToLower", "culture en-US", 'ToLower("TeSt", "en-US")', "test"),
    c("ToLower", "culture rules: tr-TR lower-cases I to dotless i", 'ToLower("ISTANBUL", "tr-TR")',
      "\u0131stanbul"),
    c("ToLower", "no culture: Invariant culture", 'ToLower("ISTANBUL")', "istanbul"),
    c("ToUpper", "Connect UCase(\"TeSt\") returns \"TEST\"", 'ToUpper("TeSt")', "TEST"),
    c("ToUpper", "culture rules: tr-TR upper-cases i to dotted İ", 'ToUpper("istanbul", "tr-TR")',
      "İSTANBUL"),
    c("ToUpper", "culture ja-JP", 'ToUpper("abc", "ja-JP")', "ABC"),
    # --- Word ------------------------------------------------------------------------------
    c("Word", 'Word("The quick brown fox",3," ") returns "brown"',
      'Word("The quick brown fox",3," ")', "brown"),
    c("Word", 'Word("This,string!has&many separators",3,",!&#") returns "has"',
      'Word("This,string!has&many separators",3,",!&#")', "has"),
    c("Word", "If number < 1, returns empty string", 'Word("The quick brown fox",0," ")', ""),
    c("Word", "negative number", 'Word("The quick brown fox",-2," ")', ""),
    c("Word", "If string is null, returns empty string", 'Word([missing],1," ")', ""),
    c("Word", "fewer than number words: empty string", 'Word("The quick brown fox",5," ")', ""),
    c("Word", "no words identified by delimiters: empty string", 'Word("   ",1," ")', ""),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_reference_case(case: Case) -> None:
    printed = cli_json(case.expression, case.attributes)
    if case.expected is IGNORED:
        assert printed == {"ignored": True}
    else:
        assert printed == {"value": case.expected}


# --- expressions the reference says fail -----------------------------------------------------

ERRORS: list[tuple[str, str, str, dict[str, Any], str]] = [
    # (function, reference text, expression, attributes, message fragment)
    ("IIF", "Unsupported: IIF([country]=\"\",\"Other\",[country]) (country empty)",
     'IIF([country]="","Other",[country])', {"country": ""}, "IIF cannot check its condition"),
    ("IIF", "Unsupported: IIF(IsNullOrEmpty([country]),\"Other\",[country])",
     'IIF(IsNullOrEmpty([country]),"Other",[country])', {}, "[country] is null or empty"),
    ("IIF", "Unsupported: IIF(IsPresent([country]),[country],\"Other\")",
     'IIF(IsPresent([country]),[country],"Other")', {}, "[country] is null or empty"),
    ("IIF", "the condition check fails when the source is null",
     'IIF([country]="USA",[country],[department])', {"department": "Sales"}, "null or empty"),
    ("Item", "Index 0 shouldn't be used", "Item([proxyAddresses], 0)", ADDRESSES, "1-based"),
    ("RandomString", "Length >= MinimumNumbers + MinimumSpecialCharacters + MinimumCapital",
     "RandomString(4,2,2,2,0)", {}, "add up to more than Length"),
    ("RandomString", "256 characters max", "RandomString(257,1,1,1,1)", {}, "1 to 256"),
    ("DateAdd", "The interval string must have one of the following values",
     'DateAdd("fortnight", 1, Now())', {}, "unknown interval"),
    ("DateDiff", "The interval string must have one of the following values",
     'DateDiff("decade", Now(), Now())', {}, "unknown interval"),
    ("CDate", "Any valid string that represents a date/time", "CDate([d])", {"d": "not a date"},
     "not a recognised date/time"),
    ("FormatDateTime", "source must match inputFormat",
     'FormatDateTime([d], , "yyyy-MM-dd", "yyyyMMdd")', {"d": "31/12/2020"}, "does not match"),
    ("Switch", "Key and value parameters must always come in pairs (even number)",
     'Switch([state], "Australia/Sydney", "NSW")', {}, "an even number"),
    ("SelectUniqueValue", "Requires a minimum of two arguments",
     'SelectUniqueValue([a])', {}, "at least 2 arguments"),
    ("SelectUniqueValue", "must be at the top-level and can't be nested",
     'ToLower(SelectUniqueValue([a], [b]))', {}, "cannot be nested"),
    ("syntax", "The syntax is case-sensitive (function names)",
     'toLower("ABC")', {}, "names are case-sensitive"),
    ("syntax", "Attributes must be enclosed in square brackets",
     'ToLower(givenName)', {}, "unknown name 'givenName'"),
    ("syntax", "String constants must be enclosed in double quotes",
     'ToLower("ABC)', {}, "unterminated string constant"),
    ("syntax", "arguments in parentheses", 'ToLower("ABC"', {}, "never closed"),
    ("syntax", "IIF doesn't support AND and OR logical operators",
     'IIF([a]="1" AND [b]="2","x","y")', {"a": "1", "b": "2"}, "expected ',' or ')'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("function", "cites", "text", "attributes", "fragment"),
    ERRORS,
    ids=[f"{row[0]}: {row[1]}" for row in ERRORS],
)
def test_reference_error(
    function: str, cites: str, text: str, attributes: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ExpressionError) as caught:
        cli_json(text, attributes)
    assert fragment in caught.value.message
    assert 0 <= caught.value.position <= len(text)
    assert f"at position {caught.value.position}" in str(caught.value)


# --- NormalizeDiacritics: every row of the reference's table ---------------------------------

DIACRITICS_TABLE = """\
ä, à, â, ã, å, á, ą, ă, ā, ā́, ā̀, ā̂, ā̃, ǟ, ā̈, ǡ, a̱, å̄ | a | Ä, À, Â, Ã, Å, Á, Ą, Ă, Ā, Ā́, Ā̀, Ā̂, Ā̃, Ǟ, Ā̈, Ǡ, A̱, Å̄ | A
æ, ǣ | ae | Æ, Ǣ | AE
ç, č, ć, c̄, c̱ | c | Ç, Č, Ć, C̄, C̱ | C
ď, d̄, ḏ | d | Ď, D̄, Ḏ | D
ë, è, é, ê, ę, ě, ė, ē, ḗ, ḕ, ē̂, ē̃, ê̄, e̱, ë̄, e̊̄ | e | Ë, È, É, Ê, Ę, Ě, Ė, Ē, Ḗ, Ḕ, Ē̂, Ē̃, Ê̄, E̱, Ë̄, E̊̄ | E
ğ, ḡ, g̱ | g | Ğ, Ḡ, G̱ | G
ï, î, ì, í, ı, ī, ī́, ī̀, ī̂, ī̃, i̱ | i | Ï, Î, Ì, Í, İ, Ī, Ī́, Ī̀, Ī̂, Ī̃, I̱ | I
ľ, ł, l̄, ḹ, ḻ | l | Ł, Ľ, L̄, Ḹ, Ḻ | L
ñ, ń, ň, n̄, ṉ | n | Ñ, Ń, Ň, N̄, Ṉ | N
ö, ò, ő, õ, ô, ó, ō, ṓ, ṑ, ō̂, ō̃, ȫ, ō̈, ǭ, ȭ, ȱ, o̱ | o | Ö, Ò, Ő, Õ, Ô, Ó, Ō, Ṓ, Ṑ, Ō̂, Ō̃, Ȫ, Ō̈, Ǭ, Ȭ, Ȱ, O̱ | O
ø, ø̄, œ̄ | oe | Ø, Ø̄, Œ̄ | OE
ř, r̄, ṟ, ṝ | r | Ř, R̄, Ṟ, Ṝ | R
ß | ss | |
š, ś, ș, ş, s̄, s̱ | s | Š, Ś, Ș, Ş, S̄, S̱ | S
ť, ț, t̄, ṯ | t | Ť, Ț, T̄, Ṯ | T
ü, ù, û, ú, ů, ű, ū, ū́, ū̀, ū̂, ū̃, u̇̄, ǖ, ṻ, ṳ̄, u̱ | u | Ü, Ù, Û, Ú, Ů, Ű, Ū, Ū́, Ū̀, Ū̂, Ū̃, U̇̄, Ǖ, Ṻ, Ṳ̄, U̱ | U
ÿ, ý, ȳ, ȳ́, ȳ̀, ȳ̃, y̱ | y | Ÿ, Ý, Ȳ, Ȳ́, Ȳ̀, Ȳ̃, Y̱ | Y
ź, ž, ż, z̄, ẕ | z | Ź, Ž, Ż, Z̄, Ẕ | Z
"""  # noqa: RUF001 (the reference lists dotless i)


def _diacritic_rows() -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for line in DIACRITICS_TABLE.splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        for characters, normalized in ((cells[0], cells[1]), (cells[2], cells[3])):
            rows.extend((ch.strip(), normalized) for ch in characters.split(",") if ch.strip())
    return rows


DIACRITIC_ROWS = _diacritic_rows()


def test_the_diacritics_table_is_complete() -> None:
    assert len(DIACRITIC_ROWS) == 261


@pytest.mark.parametrize(("character", "normalized"), DIACRITIC_ROWS)
def test_normalize_diacritics_table(character: str, normalized: str) -> None:
    assert value_of("NormalizeDiacritics([s])", {"s": character}) == normalized
    # Inside a word too, and through a multi-valued attribute.
    assert value_of("NormalizeDiacritics([s])", {"s": f"x{character}y"}) == f"x{normalized}y"


# --- functions whose values are random or the clock's: their formats and constraints --------

NOW_SHAPE = re.compile(
    r"(1[0-2]|[1-9])/([1-9]|[12]\d|3[01])/\d{4} (1[0-2]|[1-9]):[0-5]\d:[0-5]\d [AP]M"
)


def test_now_uses_the_clock_in_the_reference_format() -> None:
    # "Example value returned 7/2/2021 3:33:38 PM"
    assert value_of("Now()", now=datetime(2021, 7, 2, 15, 33, 38, tzinfo=UTC)) == (
        "7/2/2021 3:33:38 PM"
    )
    assert value_of("Now()", now=datetime(2021, 12, 31, 0, 5, 9, tzinfo=UTC)) == (
        "12/31/2021 12:05:09 AM"
    )
    assert NOW_SHAPE.fullmatch(value_of("Now()"))


def test_dates_print_in_the_reference_format() -> None:
    for text in ("CDate([d])", 'DateAdd("d", 0, [d])', "DateFromNum(NumFromDate([d]))"):
        assert NOW_SHAPE.fullmatch(value_of(text, {"d": "2020-03-16T07:00:00Z"}))


GUID_SHAPE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def test_guid_has_the_sample_output_shape_and_is_new_each_time() -> None:
    # Sample output: "00aa00aa-bb11-cc22-dd33-44ee44ee44ee"; "generates a new random GUID".
    values = {value_of("Guid()", seed=seed) for seed in range(20)}
    assert len(values) == 20
    for value in values:
        assert GUID_SHAPE.fullmatch(value)
        assert uuid.UUID(value).version == 4


def _classes(value: str) -> tuple[int, int, int, int]:
    return (
        sum(ch in string.digits for ch in value),
        sum(ch in SPECIAL_CHARACTERS for ch in value),
        sum(ch in string.ascii_uppercase for ch in value),
        sum(ch in string.ascii_lowercase for ch in value),
    )


@pytest.mark.parametrize("seed", range(10))
def test_random_string_example_1(seed: int) -> None:
    # RandomString(6,3,0,0,3): 6 characters, 3 numbers and 3 lower case characters (1a73qt).
    value = value_of("RandomString(6,3,0,0,3)", seed=seed)
    assert len(value) == 6
    assert _classes(value) == (3, 0, 0, 3)


@pytest.mark.parametrize("seed", range(10))
def test_random_string_example_2(seed: int) -> None:
    # RandomString(10,2,2,2,1,"?,"): at least 2 numbers, 2 special characters, 2 capital
    # letters, 1 lower case letter, and excludes "?" and "," (1@!2BaRg53).
    value = value_of('RandomString(10,2,2,2,1,"?,")', seed=seed)
    assert len(value) == 10
    digits, specials, capitals, lowers = _classes(value)
    assert min(digits - 2, specials - 2, capitals - 2, lowers - 1) >= 0
    assert digits + specials + capitals + lowers == 10
    assert not set(value) & {"?", ","}


def test_random_string_256_characters_max() -> None:
    assert len(value_of("RandomString(256,10,10,10,10)")) == 256


def test_redact_hides_the_value_from_logs_only() -> None:
    # Example 3: Redact(RandomString(6,3,0,0,3)) - the value flows, marked for the logs.
    context = EvaluationContext(now=lambda: NOW, random=Random(3))
    result = parse("Redact(RandomString(6,3,0,0,3))").evaluate({}, context)
    assert isinstance(result, Redacted)
    assert len(result.value) == 6
    assert to_cli_json(result) == {"value": result.value}


def test_select_unique_value_takes_the_first_value_free_in_the_target() -> None:
    # "J.Smith@contoso.com if UPN value of John.Smith@contoso.com already exists", and
    # "Jo.Smith@contoso.com if the above two UPN values already exist".
    text = next(case.expression for case in CASES if case.function == "SelectUniqueValue")
    names = {"PreferredFirstName": "John", "PreferredLastName": "Smith"}
    taken: set[str] = {"John.Smith@contoso.com"}

    def free(attribute: str, value: str) -> bool:
        return value not in taken

    assert value_of(text, names, is_unique=free) == "J.Smith@contoso.com"
    taken.add("J.Smith@contoso.com")
    assert value_of(text, names, is_unique=free) == "Jo.Smith@contoso.com"
    taken.add("Jo.Smith@contoso.com")
    with pytest.raises(ExpressionError, match="already exist"):
        value_of(text, names, is_unique=free)


# --- how values print ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "attributes", "printed"),
    [
        # Strings, numbers, booleans and lists print as JSON values of their own types.
        ('Append("a", "b")', {}, '{"value": "ab"}'),
        ('InStr("The quick brown fox","quick")', {}, '{"value": 5}'),
        ("NumFromDate(CDate([d]))", {"d": "2012-01-01 23:00:00"}, '{"value": 129699324000000000}'),
        ("IsNull([x])", {}, '{"value": true}'),
        ("IsPresent([x])", {}, '{"value": false}'),
        ('Split("a,b", ",")', {}, '{"value": ["a", "b"]}'),
        # Dates print as the text Entra flows, M/d/yyyy h:mm:ss tt.
        ('CDate("2021-06-30+08:00")', {}, '{"value": "6/29/2021 4:00:00 PM"}'),
        # Null prints as null; IgnoreFlowIfNullOrEmpty prints ignored.
        ("[missing]", {}, '{"value": null}'),
        ("IgnoreFlowIfNullOrEmpty([missing])", {}, '{"ignored": true}'),
    ],
)
def test_printed_json(text: str, attributes: dict[str, Any], printed: str) -> None:
    import json

    assert json.dumps(cli_json(text, attributes)) == printed
