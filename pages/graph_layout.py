"""A layered drawing of the dependency graph, computed on the server (pure functions).

Services that depend on nothing sit on the bottom row; each other service sits one row above
the highest thing it depends on, so every edge points down. Within a row, a few passes of the
barycenter heuristic (each node moves towards the mean position of its neighbours) keep edges
short and crossings few -- the classic Sugiyama recipe without its heavier steps, plenty for
a few hundred services.
"""

from dataclasses import dataclass

ROW_GAP = 90
NODE_HEIGHT = 28
CHAR_WIDTH = 7.2
PAD = 16
GAP = 14


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y + NODE_HEIGHT / 2


def layers(nodes: list[str], needs: dict[str, set[str]]) -> dict[str, int]:
    """Row of each node: 0 for those that need nothing, else one above what they need
    (the graph is acyclic: the registry refuses cycles)."""
    row: dict[str, int] = {}

    def visit(node: str, trail: frozenset) -> int:
        if node in row:
            return row[node]
        below = [d for d in needs.get(node, ()) if d in needs and d not in trail]
        row[node] = 1 + max((visit(d, trail | {node}) for d in below), default=-1)
        return row[node]

    for node in nodes:
        visit(node, frozenset())
    return row


def order_rows(rows: dict[int, list[str]], neighbours: dict[str, set[str]], passes: int = 4):
    """Order each row by the mean index of each node's neighbours in the rows beside it."""
    index = {n: i for members in rows.values() for i, n in enumerate(members)}
    for sweep in range(passes):
        keys = sorted(rows) if sweep % 2 == 0 else sorted(rows, reverse=True)
        for key in keys:

            def weight(node: str) -> float:
                near = [index[m] for m in neighbours.get(node, ()) if m in index]
                return sum(near) / len(near) if near else index[node]

            rows[key].sort(key=lambda n: (weight(n), n))
            for i, n in enumerate(rows[key]):
                index[n] = i
    return rows


def layout(nodes: list[str], edges: list[tuple[str, str, str]]) -> tuple[dict[str, Box], int, int]:
    """Boxes for ``nodes`` given ``edges`` (service, depends_on, kind); the drawing's size."""
    needs: dict[str, set[str]] = {n: set() for n in nodes}
    neighbours: dict[str, set[str]] = {n: set() for n in nodes}
    for service, depends_on, _ in edges:
        if service in needs and depends_on in needs:
            needs[service].add(depends_on)
            neighbours[service].add(depends_on)
            neighbours[depends_on].add(service)
    row_of = layers(sorted(nodes), needs)
    rows: dict[int, list[str]] = {}
    for node in sorted(nodes):
        rows.setdefault(row_of[node], []).append(node)
    order_rows(rows, neighbours)
    top = max(rows, default=0)
    boxes: dict[str, Box] = {}
    width = 0.0
    for key, members in rows.items():
        x = float(PAD)
        y = PAD + (top - key) * ROW_GAP
        for node in members:
            w = (len(node) + 2) * CHAR_WIDTH + 2 * PAD  # the name and its status mark
            boxes[node] = Box(x, y, w)
            x += w + GAP
        width = max(width, x)
    height = PAD * 2 + top * ROW_GAP + NODE_HEIGHT
    return boxes, int(width + PAD), int(height)
