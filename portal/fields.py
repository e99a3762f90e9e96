"""Names, tags and URLs: the validators of the models and the types of the API schemas of
every app, defined once."""

import re
from datetime import UTC, datetime
from typing import Annotated

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator, URLValidator
from ninja import Field, Path
from pydantic import AfterValidator, AwareDatetime, StrictStr, WithJsonSchema
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


# A moment in time from a caller (a filter's "since", a window's start).
Moment = Annotated[datetime, AfterValidator(_in_utc)]
AwareMoment = Annotated[AwareDatetime, AfterValidator(_in_utc)]
