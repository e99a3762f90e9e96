"""Names, tags and URLs: the validators of the models and the types of the API schemas of
every app, defined once."""

import re
from datetime import UTC, datetime
from typing import Annotated

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator, URLValidator
from ninja import Field, Path
from pydantic import AfterValidator, AwareDatetime, BeforeValidator, StrictStr, WithJsonSchema
from pydantic_core import PydanticCustomError

# DNS-label shaped, so a name can be a hostname, a Kubernetes object or a dotenv prefix.
# \Z, not $: "$" also matches before a final newline, so "svc-a\n" would pass.
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z"
NAME_HELP = "Lower-case letters, digits and hyphens; starts and ends with a letter or digit."
name_validator = RegexValidator(NAME_PATTERN, NAME_HELP)
TAG_PATTERN = r"^[a-z0-9][a-z0-9._:/-]{0,49}\Z"
tag_validator = RegexValidator(TAG_PATTERN, "Lower-case letters, digits and . _ : / -")

_NAME_RE = re.compile(NAME_PATTERN)
_TAG_RE = re.compile(TAG_PATTERN)
_url_validator = URLValidator(schemes=["http", "https"])


def _check_name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise PydanticCustomError("name", f"{value!r} is not a valid name: {NAME_HELP}")
    return value


def _check_tag(value: str) -> str:
    if not _TAG_RE.fullmatch(value):
        raise PydanticCustomError(
            "tag", f"{value!r} is not a valid tag: up to 50 of a-z 0-9 . _ : / -"
        )
    return value


def _check_url(value: str) -> str:
    if value:
        try:
            _url_validator(value)
        except DjangoValidationError:
            raise PydanticCustomError("url", f"{value!r} is not an http(s) URL") from None
    return value


# The OpenAPI document states the patterns (in ECMAScript syntax, where "$" is the end); the
# validators above check them and say what is wrong in words.
Name = Annotated[
    StrictStr,
    AfterValidator(_check_name),
    WithJsonSchema({"type": "string", "pattern": "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"}),
]
TagName = Annotated[
    StrictStr,
    AfterValidator(_check_tag),
    WithJsonSchema({"type": "string", "pattern": "^[a-z0-9][a-z0-9._:/-]{0,49}$"}),
]
Url = Annotated[StrictStr, Field(max_length=500), AfterValidator(_check_url)]


# Free text people read in a terminal too (portalctl, psql, logs): terminal escape sequences
# (ESC [ 31 m colours, moves, retitles) and other control characters are taken out on the way
# in. A sequence goes whole, so "\x1b[31mred\x1b[0m" is stored "red", not "[31mred[0m".
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erasing
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS..
    r"|\x1b[ -/]*[0-~]"  # the other escapes (charset, keypad, reset)
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile(r"[\t\n\x0b\x0c\r]+")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain_line(value: str) -> str:
    """One line of text: escape sequences and control characters out, a line break or tab
    a space (a name is one line)."""
    return _CONTROL.sub("", _LINE_BREAKS.sub(" ", _ESCAPE_SEQUENCE.sub("", value)))


def plain_text(value: str) -> str:
    """Text of several lines: escape sequences and control characters out but for line
    breaks (CR LF and CR become LF) and tabs."""
    text = _ESCAPE_SEQUENCE.sub("", value).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL_BUT_LINES.sub("", text)


# A display name or a contact (PlainLine), a description (PlainText).
PlainLine = Annotated[StrictStr, AfterValidator(plain_line)]
PlainText = Annotated[StrictStr, AfterValidator(plain_text)]


# A name taken from a URL path: validated like a name in a body, reported as that parameter.
PathName = Path[Name]

# Numbers that reach an integer column (versions, offsets): anything larger is refused (422)
# instead of overflowing the column (a 500).
MAX_INT32 = 2_147_483_647


def _in_utc(value: datetime) -> datetime:
    """PostgreSQL refuses offsets past +-15:59 that ISO 8601 and Python accept (+22:31): a
    moment is stored and compared as UTC; one without an offset is read as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # at the end of the calendar: the caller's own limits say why
        return value


def _in_utc_within_the_calendar(value: datetime) -> datetime:
    """A filter's moment in UTC; one UTC cannot hold -- before the calendar's start or past
    its end once converted (0001-01-01T00:00:00+01:00, 9999-12-31T23:59:59-23:59) -- is its
    first or last moment, which selects the same rows: nothing stored lies beyond. Kept with
    its offset, one PostgreSQL refuses (past +-15:59) answered 500."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        edge = datetime.min if value.year == 1 else datetime.max
        return edge.replace(tzinfo=UTC)


def _kind(value) -> str:
    kinds = {bool: "a boolean", str: "a string", float: "a number with a fraction"}
    kinds |= {type(None): "null", list: "an array", dict: "an object"}
    return kinds.get(type(value), type(value).__name__)


def _json_integer(value):
    """An integer as the document states it: a JSON number without a fraction (1, and 1.0 as
    JSON Schema counts it). Never "1" nor true, which pydantic's lax mode turned into 1: a
    pipeline sending the wrong type learns it at once instead of storing a guess."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise PydanticCustomError(
        "int_type", "must be a JSON integer, not {kind}", {"kind": _kind(value)}
    )


def _url_integer(value):
    """An integer from a URL (its query or path, which are text): decimal digits only, so
    "0.5", "1.0", " 1", "1_000" and "true" are refused rather than read as some number."""
    if isinstance(value, str):
        if not _DIGITS.fullmatch(value):
            raise PydanticCustomError("int_parsing", "must be a whole number in decimal digits")
        return int(value)
    return _json_integer(value)


def _url_boolean(value):
    """A boolean from a URL: true or false (as OpenAPI serialises one), not 1, yes or on."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise PydanticCustomError("bool_parsing", "must be true or false")


def _date_time_text(value):
    """A moment as ISO 8601 text (2024-05-01T12:00:00Z), which pydantic then reads: a number
    (or text that is one) is refused, where lax parsing took "0.5" as half a second after
    1970."""
    if isinstance(value, datetime) or (isinstance(value, str) and not _NUMBER.match(value)):
        return value
    raise PydanticCustomError(
        "datetime_type", "must be a date and time in ISO 8601 (2024-05-01T12:00:00Z), not a number"
    )


_DIGITS = re.compile(r"-?[0-9]{1,40}\Z")  # a bound refuses what is too large, and says so
_NUMBER = re.compile(r"\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*\Z")

# Numbers where the document states a type: a JSON body's integers (Integer), and a query or
# path parameter's integers and booleans (UrlInteger, UrlBoolean). The JSON Schema they show
# is the plain type's. A body's booleans are pydantic's StrictBool, its numbers StrictFloat.
Integer = Annotated[int, BeforeValidator(_json_integer)]
UrlInteger = Annotated[int, BeforeValidator(_url_integer)]
UrlBoolean = Annotated[bool, BeforeValidator(_url_boolean)]

# A moment in time from a caller: a filter's "since" (Moment, the calendar's ends as its
# edges), a window's start (AwareMoment, whose callers' own limits refuse the calendar's ends).
Moment = Annotated[
    datetime, BeforeValidator(_date_time_text), AfterValidator(_in_utc_within_the_calendar)
]
AwareMoment = Annotated[AwareDatetime, BeforeValidator(_date_time_text), AfterValidator(_in_utc)]
