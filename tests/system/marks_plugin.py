"""A pytest plugin for tests/system/test_tiers.py: after collection (and the markers
tests/conftest.py adds), writes which tests each `-m` expression in MARKS_EXPRESSIONS (a JSON
list) selects to the file MARKS_OUT names, as JSON -- one collection answers every question,
with the code `pytest -m` itself runs (six collections took a minute of the suite)."""

import json
import os

from _pytest.mark import MarkMatcher
from _pytest.mark.expression import Expression


def pytest_collection_finish(session):
    selected = {}
    for expression in json.loads(os.environ["MARKS_EXPRESSIONS"]):
        compiled = Expression.compile(expression)
        selected[expression] = [
            item.nodeid
            for item in session.items
            if compiled.evaluate(MarkMatcher.from_markers(item.iter_markers()))
        ]
    with open(os.environ["MARKS_OUT"], "w") as out:
        json.dump(selected, out)
