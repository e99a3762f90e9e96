"""The dependency graph, in memory: cycles, start order, impact.

Built from two flat queries (names by id, edges) so that the whole registry -- tens of
thousands of edges -- loads in milliseconds; everything else is plain Python over dicts.
Edges point from a service to what it depends on.
"""

import heapq
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.models import Dependency, DependencyKind, Service

HARD = DependencyKind.HARD.value


@dataclass
class DependencyGraph:
    # name -> {dependency name: kind}
    needs: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls) -> "DependencyGraph":
        names = dict(Service.objects.values_list("id", "name"))
        graph = cls({name: {} for name in names.values()})
        for service_id, depends_on_id, kind in Dependency.objects.values_list(
            "service_id", "depends_on_id", "kind"
        ):
            graph.needs[names[service_id]][names[depends_on_id]] = kind
        return graph

    @classmethod
    def from_edges(cls, nodes: Iterable[str], edges: Iterable[tuple[str, str, str]]):
        graph = cls({name: {} for name in nodes})
        for service, depends_on, kind in edges:
            graph.needs.setdefault(service, {})[depends_on] = kind
            graph.needs.setdefault(depends_on, {})
        return graph

    def set_dependencies(self, service: str, dependencies: dict[str, str]) -> None:
        self.needs[service] = dict(dependencies)
        for name in dependencies:
            self.needs.setdefault(name, {})

    def dependents_index(self) -> dict[str, dict[str, str]]:
        """name -> {dependent name: kind}: the edges turned round."""
        index: dict[str, dict[str, str]] = {name: {} for name in self.needs}
        for service, deps in self.needs.items():
            for dep, kind in deps.items():
                index[dep][service] = kind
        return index

    def find_cycle(self, start: Iterable[str] | None = None) -> list[str] | None:
        """A cycle as a path that ends where it starts (["a", "b", "a"]), or None.

        Iterative depth-first search, so ten thousand services in a chain cannot overflow
        the stack. With ``start``, only what those services reach is searched.
        """
        WHITE, GREY, BLACK = 0, 1, 2
        colour: dict[str, int] = {}
        roots = sorted(self.needs) if start is None else sorted(set(start))
        for root in roots:
            if colour.get(root, WHITE) != WHITE:
                continue
            path = [root]
            colour[root] = GREY
            stack = [iter(sorted(self.needs.get(root, ())))]
            while stack:
                child = next(stack[-1], None)
                if child is None:
                    stack.pop()
                    colour[path.pop()] = BLACK
                    continue
                state = colour.get(child, WHITE)
                if state == GREY:
                    return [*path[path.index(child) :], child]
                if state == WHITE:
                    colour[child] = GREY
                    path.append(child)
                    stack.append(iter(sorted(self.needs.get(child, ()))))
        return None

    def start_order(self, only: Iterable[str] | None = None) -> list[str]:
        """Dependencies before dependents (Kahn's algorithm; ties broken by name).

        With ``only``, the order covers those services and everything they need.
        """
        nodes = self.needs.keys() if only is None else self.dependencies_closure(only)
        remaining = {name: len(self.needs[name].keys() & nodes) for name in nodes}
        dependents = self.dependents_index()
        ready = [name for name, count in remaining.items() if count == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            name = heapq.heappop(ready)
            order.append(name)
            for dependent in dependents[name]:
                if dependent in remaining:
                    remaining[dependent] -= 1
                    if remaining[dependent] == 0:
                        heapq.heappush(ready, dependent)
        if len(order) != len(nodes):  # only possible if the stored graph has a cycle
            raise ValueError(f"dependency cycle: {self.find_cycle(nodes)}")
        return order

    def stop_order(self, only: Iterable[str] | None = None) -> list[str]:
        return list(reversed(self.start_order(only)))

    def dependents_to_stop(self, name: str) -> list[dict]:
        """Every service that depends on ``name``, directly or through others, in the order
        to stop them before it: each before what it depends on (ties by name).

        ``kind`` is "hard" when a chain of hard dependencies leads to ``name`` (it cannot
        work without it; the lifecycle refuses to stop ``name`` while a direct one is
        active) and "soft" when every chain passes a soft one (it goes on, degraded)."""
        dependents = self.dependents_index()
        hard_only = {
            n: {d: k for d, k in deps.items() if k == HARD} for n, deps in dependents.items()
        }
        found = self._reach([name], dependents) - {name}
        hard = self._reach([name], hard_only) - {name}
        return [
            {"service": service, "kind": "hard" if service in hard else "soft"}
            for service in self.stop_order(found)
            if service in found
        ]

    def dependencies_closure(self, names: Iterable[str]) -> set[str]:
        """The services and everything they transitively need."""
        return self._reach(names, self.needs)

    def impact(self, name: str) -> list[dict]:
        """Every service that transitively depends on ``name``, nearest first.

        ``effect`` is "down" when a chain of hard dependencies leads to ``name`` (it cannot
        work without it) and "degraded" when every chain passes a soft one.
        """
        dependents = self.dependents_index()
        hard_only = {
            n: {d: k for d, k in deps.items() if k == HARD} for n, deps in dependents.items()
        }
        down = self._reach([name], hard_only) - {name}
        depth = {name: 0}
        via: dict[str, str] = {}
        queue = deque([name])
        while queue:
            current = queue.popleft()
            for dependent in sorted(dependents.get(current, ())):
                if dependent not in depth:
                    depth[dependent] = depth[current] + 1
                    via[dependent] = current
                    queue.append(dependent)
        del depth[name]
        return [
            {
                "service": affected,
                "depth": depth[affected],
                "via": via[affected],
                "effect": "down" if affected in down else "degraded",
            }
            for affected in sorted(depth, key=lambda n: (depth[n], n))
        ]

    @staticmethod
    def _reach(names: Iterable[str], edges: dict[str, dict[str, str]]) -> set[str]:
        seen = set(names)
        queue = deque(seen)
        while queue:
            for nxt in edges.get(queue.popleft(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
        return seen


def format_cycle(cycle: list[str]) -> str:
    return " -> ".join(cycle)
