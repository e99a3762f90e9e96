"""The dependency graph, without the database."""

from services.graph import DependencyGraph, format_cycle


def graph(*edges, nodes=()):
    return DependencyGraph.from_edges(nodes, [(a, b, k) for a, b, k in edges])


def test_it_finds_no_cycle_in_a_dag():
    g = graph(("web", "api", "hard"), ("api", "db", "hard"), ("web", "db", "soft"))
    assert g.find_cycle() is None


def test_it_names_the_cycle_as_a_closed_path():
    g = graph(("a", "b", "hard"), ("b", "c", "soft"), ("c", "a", "hard"), ("x", "a", "hard"))
    cycle = g.find_cycle()
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"a", "b", "c"}
    assert len(cycle) == 4
    assert format_cycle(["a", "b", "a"]) == "a -> b -> a"


def test_it_searches_only_from_the_given_start():
    g = graph(("a", "b", "hard"), ("b", "a", "hard"), ("x", "y", "hard"))
    assert g.find_cycle(start=["x"]) is None
    assert g.find_cycle(start=["b"]) == ["b", "a", "b"]


def test_it_handles_a_chain_deeper_than_the_recursion_limit():
    chain = [(f"s{i}", f"s{i + 1}", "hard") for i in range(5000)]
    g = graph(*chain)
    assert g.find_cycle() is None
    assert g.start_order()[0] == "s5000"
    g.set_dependencies("s5000", {"s0": "hard"})
    assert len(g.find_cycle()) == 5002


def test_it_orders_dependencies_first_with_ties_by_name():
    g = graph(
        ("payments", "auth", "hard"),
        ("payments", "ledger", "soft"),
        ("auth", "db", "hard"),
        ("ledger", "db", "hard"),
        nodes=["zeta", "alpha"],
    )
    order = g.start_order()
    assert order == ["alpha", "db", "auth", "ledger", "payments", "zeta"]
    assert g.stop_order() == list(reversed(order))


def test_it_limits_the_order_to_what_a_service_needs():
    g = graph(("payments", "auth", "hard"), ("auth", "db", "hard"), ("other", "db", "hard"))
    assert g.start_order(only=["auth"]) == ["db", "auth"]
    assert g.stop_order(only=["payments"]) == ["payments", "auth", "db"]


def test_it_lists_the_dependents_to_stop_first_in_stop_order():
    g = graph(
        ("web", "payments", "hard"),
        ("payments", "auth", "hard"),
        ("payments", "ledger", "soft"),
        ("auth", "db", "hard"),
        ("ledger", "db", "hard"),
        ("reports", "db", "soft"),
        ("batch", "reports", "hard"),
        nodes=["other"],
    )
    stop = g.dependents_to_stop("db")
    names = [d["service"] for d in stop]
    assert set(names) == {"web", "payments", "auth", "ledger", "reports", "batch"}
    for service, deps in g.needs.items():  # each stopped before what it depends on
        for dep in deps:
            if service in names and dep in names:
                assert names.index(service) < names.index(dep)
    kinds = {d["service"]: d["kind"] for d in stop}
    assert kinds == {
        "web": "hard",
        "payments": "hard",
        "auth": "hard",
        "ledger": "hard",
        "reports": "soft",
        "batch": "soft",  # hard on reports, which only softly needs db
    }
    assert g.dependents_to_stop("web") == []
    assert g.dependents_to_stop("other") == []


def test_it_reports_impact_nearest_first_with_effect():
    g = graph(
        ("auth", "db", "hard"),
        ("payments", "auth", "hard"),
        ("reports", "db", "soft"),
        ("dash", "reports", "hard"),
        ("gw", "payments", "soft"),
    )
    impact = g.impact("db")
    assert [i["service"] for i in impact] == ["auth", "reports", "dash", "payments", "gw"]
    effects = {i["service"]: i["effect"] for i in impact}
    assert effects == {
        "auth": "down",
        "payments": "down",
        "reports": "degraded",
        "dash": "degraded",
        "gw": "degraded",
    }
    assert {i["service"]: i["depth"] for i in impact}["payments"] == 2
    assert {i["service"]: i["via"] for i in impact}["payments"] == "auth"


def test_a_service_reachable_by_hard_and_soft_paths_is_down():
    g = graph(("app", "cache", "soft"), ("app", "db", "hard"), ("cache", "db", "hard"))
    assert {i["service"]: i["effect"] for i in g.impact("db")} == {"app": "down", "cache": "down"}
    assert g.impact("cache") == [
        {"service": "app", "depth": 1, "via": "cache", "effect": "degraded"}
    ]


def test_a_leaf_has_no_impact():
    assert graph(("a", "b", "hard")).impact("a") == []
