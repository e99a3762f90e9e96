"""Configuration schemas: the seed's ServiceConfigSchema form, JSON Schema, and validation.

A schema is stored as JSON Schema (draft 2020-12). The seed's form -- ``required_fields``,
``optional_fields``, ``field_types`` (``str int float bool list dict``), ``field_defaults``,
``validation_rules`` (``min``/``max``/``choices``/``pattern``), ``secret_fields`` -- is
converted on the way in. A field is secret when its JSON Schema says ``"writeOnly": true``.

A schema is checked whole before it is stored (``normalise``): against the meta-schema, every
reference resolved, every pattern runnable by RE2, no reference loop that validation would
follow forever, every secret where the portal can find (and encrypt) it and carrying no value
of its own, and finally tried on its own defaults within the validation budget. A schema that
passes can be used for every later read and write of the service's configuration.
"""

import copy
import json
from collections.abc import Sequence
from functools import lru_cache

from django.conf import settings
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from portal.errors import InvalidInput, field_path
from services import config_validation

SEED_KEYS = {
    "required_fields",
    "optional_fields",
    "field_types",
    "field_defaults",
    "validation_rules",
    "secret_fields",
    "description",
}
SEED_TYPES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "list": "array",
    "dict": "object",
}
_RULE_KEYWORDS: dict[str | None, dict[str, str]] = {
    "string": {"min": "minLength", "max": "maxLength"},
    "array": {"min": "minItems", "max": "maxItems"},
    "object": {"min": "minProperties", "max": "maxProperties"},
}
_NUMBER_RULES = {"min": "minimum", "max": "maximum"}
_ROOT = "urn:portal:config-schema"
# Keywords whose values a schema reader sees: on a secret they would publish it.
VALUE_KEYWORDS = ("default", "const", "enum", "examples")
WRITE_ONLY_VALUE_REASON = (
    "a secret cannot carry a value in its schema (default, const, choices/enum, examples): "
    "schemas are readable with config:read and are not encrypted; store the value in the "
    "configuration instead"
)
# Subschemas by keyword, draft 2020-12: one subschema, a map of them, a list of them.
_ONE = (
    "additionalProperties",
    "items",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
    "unevaluatedItems",
    "unevaluatedProperties",
)
_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_LIST = ("allOf", "anyOf", "oneOf", "prefixItems")
# Keywords that apply their subschemas to the same value (no step into the document): a loop
# through these alone is followed forever.
_IN_PLACE_ONE = ("not", "if", "then", "else")
_IN_PLACE_LIST = ("allOf", "anyOf", "oneOf")
_UNSUPPORTED = ("$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor")


def is_seed_form(document: dict) -> bool:
    return bool(SEED_KEYS & document.keys()) and "properties" not in document


def from_seed_form(document: dict) -> dict:
    """Convert the seed's ServiceConfigSchema form to JSON Schema, with per-field errors."""
    errors: dict[str, str] = {}
    unknown = sorted(document.keys() - SEED_KEYS)
    for key in unknown:
        errors[key] = f"not a ServiceConfigSchema key; known: {', '.join(sorted(SEED_KEYS))}"
    lists = {}
    for key in ("required_fields", "optional_fields", "secret_fields"):
        value = document.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors[key] = "must be a list of field names"
            value = []
        lists[key] = value
    maps = {}
    for key in ("field_types", "field_defaults", "validation_rules"):
        value = document.get(key, {})
        if not isinstance(value, dict):
            errors[key] = "must be an object keyed by field name"
            value = {}
        maps[key] = value
    names = list(
        dict.fromkeys(
            lists["required_fields"] + lists["optional_fields"] + list(maps["field_types"])
        )
    )
    properties = {}
    for name in names:
        properties[name] = _seed_field(name, maps, lists["secret_fields"], errors)
    for key in ("field_defaults", "validation_rules"):
        for name in maps[key].keys() - set(names):
            errors[f"{key}.{name}"] = "not a declared field"
    for name in set(lists["secret_fields"]) - set(names):
        errors[f"secret_fields.{name}"] = "not a declared field"
    for name in set(lists["secret_fields"]) & maps["field_defaults"].keys():
        errors[f"field_defaults.{name}"] = WRITE_ONLY_VALUE_REASON
    for name in set(lists["secret_fields"]):
        rules = maps["validation_rules"].get(name)
        if isinstance(rules, dict) and "choices" in rules:
            errors[f"validation_rules.{name}.choices"] = WRITE_ONLY_VALUE_REASON
    if errors:
        raise InvalidInput("the schema is not a valid ServiceConfigSchema", fields=errors)
    schema = {"type": "object", "properties": properties, "required": lists["required_fields"]}
    if document.get("description"):
        schema["description"] = document["description"]
    return schema


def _seed_field(name: str, maps: dict, secret: list[str], errors: dict) -> dict:
    field: dict = {}
    type_name = maps["field_types"].get(name)
    json_type = None
    if type_name is not None:
        json_type = SEED_TYPES.get(type_name) if isinstance(type_name, str) else None
        if json_type is None:
            errors[f"field_types.{name}"] = (
                f"unknown type {type_name!r}; use one of {', '.join(SEED_TYPES)}"
            )
        else:
            field["type"] = json_type
    if name in maps["field_defaults"]:
        field["default"] = maps["field_defaults"][name]
    rules = maps["validation_rules"].get(name, {})
    if not isinstance(rules, dict):
        errors[f"validation_rules.{name}"] = "must be an object (min, max, choices, pattern)"
        rules = {}
    for rule, value in rules.items():
        where = f"validation_rules.{name}.{rule}"
        if rule in ("min", "max"):
            if not isinstance(value, int | float) or isinstance(value, bool):
                errors[where] = "must be a number"
                continue
            keyword = _RULE_KEYWORDS.get(json_type, _NUMBER_RULES)[rule]
            field[keyword] = value
        elif rule == "choices":
            if not isinstance(value, list) or not value:
                errors[where] = "must be a non-empty list"
            else:
                field["enum"] = value
        elif rule == "pattern" and isinstance(value, str):
            field["pattern"] = value
        else:
            errors[where] = "unknown rule; use min, max, choices or pattern"
    if name in secret:
        field["writeOnly"] = True
    return field


def normalise(document: dict) -> tuple[dict, str]:
    """A checked JSON Schema for a document in either form, and which form it was."""
    if not isinstance(document, dict):
        raise InvalidInput("a schema is a JSON object", fields={"schema": "not an object"})
    if is_seed_form(document):
        schema, form = from_seed_form(document), "seed"
    else:
        schema, form = copy.deepcopy(document), "jsonschema"
    root_type = schema.setdefault("type", "object")
    if root_type != "object":
        raise InvalidInput(
            "a configuration schema describes an object",
            fields={"type": f"must be 'object', not {root_type!r}"},
        )
    schema.setdefault("$schema", "https://json-schema.org/draft/2020-12/schema")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = field_path(list(exc.absolute_path)) if exc.absolute_path else "schema"
        raise InvalidInput(
            "the schema is not valid JSON Schema (draft 2020-12)", fields={where: exc.message}
        ) from None
    except RecursionError:
        raise InvalidInput(
            "the schema is nested too deeply", fields={"schema": "nested too deeply"}
        ) from None
    for check in (
        _check_supported,
        _check_references,
        _check_patterns,
        _check_reference_loops,
        _check_nesting,
    ):
        check(schema)
    paths = secret_paths(schema)
    _check_secret_values(schema, paths)
    try_out(schema)
    return schema, form


def _subschemas(node, location: tuple = ()):
    """(location, subschema) for the node and every subschema under it, by keyword."""
    if not isinstance(node, dict):
        return
    yield location, node
    for key in _ONE:
        if isinstance(node.get(key), dict):
            yield from _subschemas(node[key], (*location, key))
    for key in _MAP:
        if isinstance(node.get(key), dict):
            for name, sub in node[key].items():
                yield from _subschemas(sub, (*location, key, name))
    for key in _LIST:
        if isinstance(node.get(key), list):
            for i, sub in enumerate(node[key]):
                yield from _subschemas(sub, (*location, key, i))


def _refuse(message: str, location, reason: str):
    raise InvalidInput(message, fields={field_path(list(location)): reason})


def _check_supported(schema: dict) -> None:
    """Dynamic references resolve by the path validation took, which the checks below
    cannot follow; ``unevaluatedProperties`` would evaluate ``patternProperties`` with
    Python's backtracking engine (see services.config_validation)."""
    has_patterns = any("patternProperties" in node for _, node in _subschemas(schema))
    for location, node in _subschemas(schema):
        for key in _UNSUPPORTED:
            if key in node:
                _refuse(
                    "the schema uses a keyword the portal does not support",
                    (*location, key),
                    "dynamic references are not supported in configuration schemas; use $ref",
                )
        if has_patterns and "unevaluatedProperties" in node:
            _refuse(
                "the schema combines keywords the portal does not support",
                (*location, "unevaluatedProperties"),
                "not supported together with patternProperties; use additionalProperties",
            )


def _resolver(schema: dict):
    return Registry().with_resource(_ROOT, DRAFT202012.create_resource(schema)).resolver(_ROOT)


def _check_references(schema: dict) -> None:
    """Resolve every $ref now, so a dangling one is refused here rather than failing every
    validation later. Nothing is fetched: a reference outside the document is refused."""
    resolver = _resolver(schema)
    for ref in _references(schema):
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise InvalidInput(
                "the schema has a reference that cannot be resolved",
                fields={"$ref": f"{ref!r} does not resolve within the schema"},
            ) from None


def _check_patterns(schema: dict) -> None:
    """Every pattern must run on RE2 (linear time): refused here, not at validation."""
    errors = {}
    for location, node in _subschemas(schema):
        found = []
        if isinstance(node.get("pattern"), str):
            found.append(((*location, "pattern"), node["pattern"]))
        for key in node.get("patternProperties") or {}:
            found.append(((*location, "patternProperties", key), key))
        for where, pattern in found:
            try:
                config_validation.compile_pattern(pattern)
            except config_validation.PatternError as exc:
                errors[field_path(list(where))] = str(exc)
    if errors:
        raise InvalidInput("the schema has patterns the portal cannot run", fields=errors)


def _in_place(node: dict, resolver) -> list[dict]:
    """The subschemas applied to the same value as ``node`` (references resolved)."""
    found = [node[key] for key in _IN_PLACE_ONE if isinstance(node.get(key), dict)]
    for key in _IN_PLACE_LIST:
        found += [sub for sub in node.get(key) or [] if isinstance(sub, dict)]
    found += [sub for sub in (node.get("dependentSchemas") or {}).values() if isinstance(sub, dict)]
    if isinstance(node.get("$ref"), str):
        target = resolver.lookup(node["$ref"]).contents
        if isinstance(target, dict):
            found.append(target)
    return found


def _check_reference_loops(schema: dict) -> None:
    """Refuse a loop of references (and allOf/anyOf/...) that never steps into the document:
    ``{"$ref": "#"}`` at the root, or a definition that refers to itself, would be followed
    until the process runs out of stack on the first value validated."""
    resolver = _resolver(schema)
    where = {id(node): location for location, node in _subschemas(schema)}
    WHITE, GREY, BLACK = 0, 1, 2
    colour: dict[int, int] = {}
    for _, root in _subschemas(schema):
        if colour.get(id(root), WHITE) != WHITE:
            continue
        colour[id(root)] = GREY
        stack = [(root, iter(_in_place(root, resolver)))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[id(node)] = BLACK
                stack.pop()
                continue
            state = colour.get(id(child), WHITE)
            if state == GREY:
                location = where.get(id(node), ())
                target = field_path(list(where.get(id(child), ()))) or "#"
                _refuse(
                    "the schema refers to itself without end",
                    (*location, "$ref") if "$ref" in node else location,
                    f"a loop of references back to {target} that never steps into the "
                    "document: validating any value would follow it forever",
                )
            if state == WHITE:
                colour[id(child)] = GREY
                stack.append((child, iter(_in_place(child, resolver))))


# How deep validation may go, in subschemas applied one inside another (through references
# too). Each costs the validator two or three frames of Python's stack (measured: 493 $refs
# in a chain, 123 `not`s in a row fill the default 1,000), so 100 leaves room for the request
# around it: a schema that needs more could never validate a value that reaches its end
# (every validation would be `schema_too_costly`), and is refused when saved instead.
MAX_NESTING = 100


def _applied(node: dict, resolver) -> list[dict]:
    """The subschemas validation applies from ``node`` ($defs are only places to refer to)."""
    found = [node[key] for key in _ONE if isinstance(node.get(key), dict)]
    for key in ("properties", "patternProperties", "dependentSchemas"):
        found += [sub for sub in (node.get(key) or {}).values() if isinstance(sub, dict)]
    for key in _LIST:
        found += [sub for sub in node.get(key) or [] if isinstance(sub, dict)]
    if isinstance(node.get("$ref"), str):
        target = resolver.lookup(node["$ref"]).contents
        if isinstance(target, dict):
            found.append(target)
    return found


def _check_nesting(schema: dict) -> None:
    """Refuse a schema whose subschemas nest deeper than MAX_NESTING along any path validation
    can take (a chain of 500 references, say). A reference back to a subschema already on
    the path steps into the document (loops that do not were refused before), so the
    document's own depth, not the schema, bounds how often it is followed: not counted."""
    resolver = _resolver(schema)
    where = {id(node): location for location, node in _subschemas(schema)}
    WHITE, GREY, BLACK = 0, 1, 2
    colour: dict[int, int] = {id(schema): GREY}
    depth: dict[int, int] = {}  # a node -> the most subschemas on a path from it, itself included
    deeper: dict[int, dict] = {}  # a node -> its child on that path
    stack = [(schema, iter(_applied(schema, resolver)))]
    while stack:  # iterative: the chain may be longer than Python's stack
        node, children = stack[-1]
        child = next(children, None)
        if child is None:
            colour[id(node)] = BLACK
            stack.pop()
            below = [c for c in _applied(node, resolver) if colour.get(id(c)) == BLACK]
            best = max(below, key=lambda c: depth[id(c)], default=None)
            depth[id(node)] = 1 + (depth[id(best)] if best is not None else 0)
            if best is not None:
                deeper[id(node)] = best
            continue
        if colour.get(id(child), WHITE) == WHITE:
            colour[id(child)] = GREY
            stack.append((child, iter(_applied(child, resolver))))
    if depth[id(schema)] <= MAX_NESTING:
        _check_loop_nesting(schema, resolver, where)
        return
    path = [schema]
    while id(path[-1]) in deeper:
        path.append(deeper[id(path[-1])])
    shown = [field_path(list(where[id(n)])) if where.get(id(n)) else "#" for n in path]
    beyond = path[MAX_NESTING]
    _refuse(
        "the schema nests too deeply to validate",
        where.get(id(beyond), ()),
        f"subschemas nested {len(path)} deep along {' -> '.join(_ends(shown))}; validation "
        f"follows at most {MAX_NESTING}, so every value reaching this far would be refused "
        "(schema_too_costly)",
    )


def _check_loop_nesting(schema: dict, resolver, where: dict) -> None:
    """Refuse a schema whose reference loops, followed as deep as a document may nest
    (API_MAX_JSON_DEPTH), apply more than MAX_NESTING subschemas one inside another.

    A loop that steps into the document is followed once per level of the document, and
    each time costs every subschema in it: a loop of 30 ``not``s per level accepted by the
    acyclic count above made a document five levels deep schema_too_costly. So validation is
    walked here as the deepest document the API takes would drive it: a step into the
    document (properties, items, ...) takes one of its levels, a step in place (a reference,
    allOf, not, ...) none -- those never loop, that was refused before."""
    levels = settings.API_MAX_JSON_DEPTH
    longest: dict[tuple[int, int], int] = {}  # (node, level) -> subschemas from it, itself too
    nxt: dict[tuple[int, int], tuple[dict, int]] = {}
    stack = [(schema, 0, iter(_steps(schema, resolver)))]
    while stack:  # iterative, as above; (node, level) pairs form no loop
        node, level, children = stack[-1]
        step = next(children, None)
        if step is None:
            stack.pop()
            below = [(c, lv) for c, lv in _next_states(node, level, levels, resolver)]
            best = max(below, key=lambda s: longest[(id(s[0]), s[1])], default=None)
            longest[(id(node), level)] = 1 + (longest[(id(best[0]), best[1])] if best else 0)
            if best is not None:
                nxt[(id(node), level)] = best
            continue
        child, down = step
        if level + down <= levels and (id(child), level + down) not in longest:
            stack.append((child, level + down, iter(_steps(child, resolver))))
    if longest[(id(schema), 0)] <= MAX_NESTING:
        return
    path = [(schema, 0)]
    while (id(path[-1][0]), path[-1][1]) in nxt:
        path.append(nxt[(id(path[-1][0]), path[-1][1])])
    shown = [field_path(list(where[id(n)])) if where.get(id(n)) else "#" for n, _ in path]
    _refuse(
        "the schema nests too deeply to validate",
        where.get(id(path[MAX_NESTING][0]), ()),
        f"its references loop through the document: a document nested {levels} deep "
        f"(API_MAX_JSON_DEPTH) is validated through {len(path)} subschemas one inside "
        f"another along {' -> '.join(_ends(shown))}; validation follows at most "
        f"{MAX_NESTING} (schema_too_costly) -- shorten the loop",
    )


def _steps(node: dict, resolver) -> list[tuple[dict, int]]:
    """The subschemas validation applies from ``node``, each with the document levels it
    steps down: 0 for one applied to the same value, 1 for a member or an item's."""
    in_place = _in_place(node, resolver)
    remaining = [id(c) for c in in_place]
    steps = [(child, 0) for child in in_place]
    for child in _applied(node, resolver):
        if id(child) in remaining:
            remaining.remove(id(child))
        else:
            steps.append((child, 1))
    return steps


def _next_states(node: dict, level: int, levels: int, resolver) -> list[tuple[dict, int]]:
    return [(c, level + d) for c, d in _steps(node, resolver) if level + d <= levels]


def _ends(places: list[str]) -> list[str]:
    """A long path by its first three places and its last two."""
    return places if len(places) <= 6 else [*places[:3], "...", *places[-2:]]


def try_out(schema: dict) -> None:
    """Validate the schema's own defaults (and an empty document) with it, within the
    validation budget: a schema that cannot be evaluated is refused before it is stored."""
    validator = config_validation.PortalValidator(closed(schema))
    empty: dict = {}
    try:
        for document in (empty, defaults_of(schema)):
            config_validation.errors(validator, document)
    except config_validation.ValidationTooCostly as exc:
        raise InvalidInput(
            "the schema cannot be evaluated in bounded time", fields={"schema": str(exc)}
        ) from None


def _references(node):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def secret_paths(schema: dict) -> list[list[str]]:
    """Paths of writeOnly leaves; "*" stands for every item of an array.

    Followed through ``properties``, ``items``/``prefixItems``, references and the keywords
    that apply to the same value (allOf, anyOf, oneOf, if/then/else, dependentSchemas). A
    secret the portal could not find by those paths -- under patternProperties or
    additionalProperties, or inside a structure that refers to itself -- would be stored in
    clear, so such a schema is refused."""
    walker = _SecretWalker(schema)
    walker.walk(schema, (), ())
    return [list(p) for p in dict.fromkeys(walker.found)]


class _SecretWalker:
    def __init__(self, root: dict):
        self.resolver = _resolver(root)
        self.where = {id(node): location for location, node in _subschemas(root)}
        self.found: list[tuple] = []
        # (node, path) pairs already walked: subschemas shared through references are walked
        # once per place in the document, not once per way of reaching them.
        self.done: set[tuple] = set()

    def walk(self, node, prefix: tuple, on_path: tuple) -> None:
        if not isinstance(node, dict):
            return
        if id(node) in on_path:
            if self.holds_secret(node, set()):
                self.refuse(node, "a secret inside a structure that refers to itself")
            return
        if (id(node), prefix) in self.done:
            return
        self.done.add((id(node), prefix))
        on_path = (*on_path, id(node))
        if node.get("writeOnly") is True:
            self.found.append(prefix)
            return
        for name, sub in (node.get("properties") or {}).items():
            self.walk(sub, (*prefix, name), on_path)
        for sub in [node.get("items"), *(node.get("prefixItems") or [])]:
            self.walk(sub, (*prefix, "*"), on_path)
        for sub in _in_place(node, self.resolver):
            self.walk(sub, prefix, on_path)
        for key in ("patternProperties", "additionalProperties", "unevaluatedProperties"):
            value = node.get(key)
            subs = value.values() if key == "patternProperties" and value else [value]
            if any(self.holds_secret(sub, set()) for sub in subs):
                self.refuse(node, f"a secret under {key}: only named properties can be secret")
        if self.holds_secret(node.get("contains"), set()):
            self.refuse(node, "a secret under contains: only named properties can be secret")

    def holds_secret(self, node, seen: set) -> bool:
        """Whether a writeOnly subschema can be reached from ``node`` by any keyword."""
        if not isinstance(node, dict) or id(node) in seen:
            return False
        seen.add(id(node))
        for _, sub in _subschemas(node):
            if sub.get("writeOnly") is True:
                return True
            ref = sub.get("$ref")
            if isinstance(ref, str) and self.holds_secret(self.resolver.lookup(ref).contents, seen):
                return True
        return False

    def refuse(self, node: dict, reason: str):
        _refuse(
            "the schema declares a secret the portal could not encrypt",
            self.where.get(id(node), ()),
            f"{reason}; it would be stored in clear",
        )


def _check_secret_values(schema: dict, paths: list[list[str]]) -> None:
    """No default, const, enum or examples may hold a secret: the schema document is shown
    to every reader (``GET .../config/schema``), kept in clear, and defaults are merged into
    documents before anything is encrypted."""
    resolver = _resolver(schema)
    where = {id(node): location for location, node in _subschemas(schema)}
    done: set[tuple] = set()  # as in _SecretWalker: each place once

    def visit(node, prefix: tuple, on_path: tuple):
        if not isinstance(node, dict) or id(node) in on_path or (id(node), prefix) in done:
            return
        done.add((id(node), prefix))
        on_path = (*on_path, id(node))
        inside = [p for p in paths if _covers(p, prefix)]  # a secret at or above this node
        below = [p[len(prefix) :] for p in paths if len(p) > len(prefix) and _covers(prefix, p)]
        for key in VALUE_KEYWORDS:
            if key not in node:
                continue
            values = (
                node[key]
                if key in ("enum", "examples") and isinstance(node[key], list)
                else [node[key]]
            )
            if inside or any(_holds(value, rest) for value in values for rest in below):
                _refuse(
                    "a secret has a value in the schema",
                    (*where.get(id(node), ()), key),
                    WRITE_ONLY_VALUE_REASON,
                )
        for name, sub in (node.get("properties") or {}).items():
            visit(sub, (*prefix, name), on_path)
        for sub in [node.get("items"), *(node.get("prefixItems") or [])]:
            visit(sub, (*prefix, "*"), on_path)
        for sub in _in_place(node, resolver):
            visit(sub, prefix, on_path)

    visit(schema, (), ())


def _covers(secret: Sequence, path: Sequence) -> bool:
    """Whether ``path`` is at or under ``secret`` ("*" matches any item)."""
    return len(path) >= len(secret) and all(
        s == "*" or s == p or p == "*" for s, p in zip(secret, path, strict=False)
    )


def _holds(value, path) -> bool:
    """Whether ``value`` has a leaf at ``path`` ("*": any item of an array)."""
    if not path:
        return True
    head, rest = path[0], path[1:]
    if head == "*":
        return isinstance(value, list) and any(_holds(item, rest) for item in value)
    return isinstance(value, dict) and head in value and _holds(value[head], rest)


def defaults_of(schema: dict):
    """The document the schema's defaults make up (nested objects included)."""
    if not isinstance(schema, dict):
        return None
    if "default" in schema:
        return copy.deepcopy(schema["default"])
    if schema.get("type") == "object" or "properties" in schema:
        result = {}
        for name, sub in (schema.get("properties") or {}).items():
            value = defaults_of(sub)
            if value is not None:
                result[name] = value
        return result
    return None


def merge_defaults(schema: dict, values):
    """``values`` with the schema's defaults filled in where a key is absent."""
    if not isinstance(values, dict) or not isinstance(schema, dict):
        return values
    merged = dict(values)
    for name, sub in (schema.get("properties") or {}).items():
        if name in merged:
            merged[name] = merge_defaults(sub, merged[name])
        else:
            default = defaults_of(sub)
            if default is not None and default != {}:
                merged[name] = default
    return merged


def closed(schema: dict) -> dict:
    """The schema with unknown keys refused in every object that lists its properties
    (strict and lenient validation report unknown fields; JSON Schema allows them)."""
    if not isinstance(schema, dict):
        return schema
    result: dict = {}
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions", "patternProperties"):
            result[key] = {k: closed(v) for k, v in value.items()}
        elif key in (
            "items",
            "additionalProperties",
            "not",
            "if",
            "then",
            "else",
            "contains",
            "propertyNames",
            "unevaluatedProperties",
        ):
            result[key] = closed(value)
        elif key in ("allOf", "anyOf", "oneOf", "prefixItems"):
            result[key] = [closed(v) for v in value]
        else:
            result[key] = value
    combines = any(k in schema for k in ("allOf", "anyOf", "oneOf", "$ref"))
    if "properties" in result and "additionalProperties" not in result and not combines:
        result["additionalProperties"] = False
    return result


@lru_cache(maxsize=256)
def _validator(schema_id: int, schema_json: str):
    return config_validation.PortalValidator(closed(json.loads(schema_json)))


def validator_for(schema_row):
    """A compiled validator (RE2 patterns, bounded time: services.config_validation),
    cached per stored schema version (rows are immutable; the content is part of the key so
    a reused primary key cannot return a stale one)."""
    return _validator(schema_row.pk, json.dumps(schema_row.schema, sort_keys=True))
