"""The operator's guide and its example alert rules (docs/operating.md,
deploy/prometheus/alerts.yml): the rules have Prometheus' shape, name only metrics a real
/metrics response of the portal carries, pass `promtool check rules` and their unit tests
when promtool is installed (Debian's prometheus package), and the guide explains every metric
family the portal exposes and quotes the storage figure it was measured with."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from healthchecks.engine import capacity, counters
from healthchecks.status import ErrorCode, Status
from tests.factories import ServiceFactory

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
GUIDE = ROOT / "docs" / "operating.md"
# Series Prometheus makes itself for every target, not the portal.
PROMETHEUS_OWN = {"up"}
PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "bool", "offset"}
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def rules() -> list[dict]:
    document = yaml.safe_load(RULES.read_text())
    assert set(document) == {"groups"}
    return [rule for group in document["groups"] for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers left once strings, label matchers,
    grouping clauses and range selectors are gone, and that are not functions or keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    found = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group() in PROMQL_WORDS:
            continue
        found.add(match.group())
    return found


@pytest.fixture
def scraped(client, db):
    """The series a real /metrics answer carries once the engine has done something: a
    service with a status, results counted and a batch and a dispatch run reported through
    the functions the workers and the dispatcher call."""
    ServiceFactory(name="ledger")
    labels = [
        "healthy",
        "unhealthy",
        counters.result_label(Status.UNKNOWN, ErrorCode.MISSED),
        counters.result_label(Status.UNKNOWN, ErrorCode.CHECKER_OVERLOADED),
    ]
    counters.observe_batch(labels, [0.004, 0.3], [0.002, 0.04, 0.0, 0.1])
    counters.count("dispatched", 4)
    capacity.report_batch({"probed": 40, "on_time": 38, "loop_lag_max_ms": 12}, cpu_s=0.02)
    capacity.report_run(due=40, sent=40, skipped=0)
    response = client.get("/metrics")
    assert response.status_code == 200
    families = list(text_string_to_metric_families(response.content.decode()))
    return {
        "families": {family.name for family in families},
        "series": {sample.name for family in families for sample in family.samples},
    }


def test_the_rules_have_prometheus_shape():
    document = yaml.safe_load(RULES.read_text())
    assert document["groups"] and all(set(g) == {"name", "rules"} for g in document["groups"])
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names)), "alert names repeat"
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"])
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        assert "for" not in rule or DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("page", "warning", "info"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_the_name_extraction_finds_names_and_leaves_functions_out():
    expr = 'histogram_quantile(0.99, max without (instance) (rate(a_bucket{x="b c"}[5m]))) > 1'
    assert metric_names(expr) == {"a_bucket"}
    assert metric_names("sum(rate(x_total[5m])) > 0 and on (service) y == 0") == {"x_total", "y"}


def test_every_metric_a_rule_names_is_on_the_portals_metrics(scraped):
    named = set().union(*(metric_names(rule["expr"]) for rule in rules()))
    assert "portal_probe_skipped_per_second" in named  # the extraction found the names
    unknown = named - scraped["series"] - PROMETHEUS_OWN
    assert not unknown, f"not on /metrics: {sorted(unknown)}"


def test_the_guide_explains_every_metric_family(scraped):
    guide = GUIDE.read_text()
    missing = sorted(name for name in scraped["families"] if name not in guide)
    assert not missing, f"docs/operating.md does not mention {missing}"
    assert "deploy/prometheus/alerts.yml" in guide


def test_the_guide_quotes_the_measured_history_size():
    measured = json.loads((ROOT / "bench" / "results" / "history-size.json").read_text())
    per_day = measured["per_1000_checks"]
    guide = GUIDE.read_text()
    assert f"{per_day['raw_mb_per_day']:g} MB" in guide
    assert f"{per_day['raw_bytes_per_result']:g} bytes" in guide


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules_and_their_unit_tests():
    checked = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        ["promtool", "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
