"""A validation issue never quotes a secret (issue 21's breaking trial: a rule on an object
holding a secret -- maxProperties, not, anyOf at the root -- quoted the whole object, secret
included, into the reason a refused rollback put on a deployment's verdict)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from services import configs
from services.models import ConfigSchema

PARENT_RULES = [
    {"maxProperties": 1},
    {"minProperties": 9},
    {"not": {"required": ["password"]}},
    {"anyOf": [{"required": ["nothing"]}, {"maxProperties": 0}]},
    {"oneOf": [{"required": ["nothing"]}, {"required": ["nothing-else"]}]},
    {"propertyNames": {"maxLength": 2}},
    {"dependentRequired": {"password": ["missing"]}},
]
secrets = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=6, max_size=30)


def schema_with(rule: dict, nested: bool) -> ConfigSchema:
    inner = {
        "type": "object",
        "properties": {"password": {"type": "string", "writeOnly": True}, "n": {"type": "integer"}},
        **rule,
    }
    if nested:
        document = {"type": "object", "properties": {"db": inner}}
        paths = [["db", "password"]]
    else:
        document, paths = inner, [["password"]]
    return ConfigSchema(pk=None, schema=document, secret_paths=paths)


@settings(max_examples=60, deadline=None)
@given(
    rule=st.sampled_from(PARENT_RULES),
    secret=secrets.filter(lambda s: s.strip() and s not in ("password", "nothing")),
    nested=st.booleans(),
)
def test_no_issue_quotes_a_secret_whatever_rule_fails_above_it(rule, secret, nested):
    values = {"password": secret, "n": 1}
    document = {"db": values} if nested else values
    issues = configs.schema_issues(document, schema_with(rule, nested))
    assert issues, rule  # the rule does fail
    text = " ".join(issues.values())
    assert secret not in text and repr(secret) not in text
    assert "the value is not shown" in text


def test_an_issue_on_an_object_without_secrets_still_quotes_what_it_saw():
    schema = ConfigSchema(
        pk=None,
        schema={"type": "object", "properties": {"n": {"type": "integer"}}, "maxProperties": 0},
        secret_paths=[],
    )
    assert configs.schema_issues({"n": 1}, schema) == {"values": "{'n': 1} is expected to be empty"}
