"""Configuration benchmark: validate and store, read (JSON and env), and diff versions.

Targets (from the issue), on this machine: validating and storing a 200-key configuration
under 20 ms p99; reading the current configuration (JSON or env) under 10 ms p99 through a
real server; the diff of two 1,000-key versions under 50 ms.

Works on its own database (``portal_bench_config``, recreated each run on DATABASE_URL's
server) and Redis database 11. Application modules are imported inside functions: they may
only be imported once ``support.setup_django`` has pointed Django at that database.
"""

import functools
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from bench import support

NAME = "config"
DESCRIPTION = "store, validate, read and diff 200- and 1,000-key configurations"
DATABASE = "portal_bench_config"
SEED = 20240602
SERVICE = "cfg-200"  # the 200-key configuration: store, validate, read
DIFF_SERVICE = "cfg-1000"  # two 1,000-key versions: diff

CHUNK = 250  # requests measured between two waits for an idle machine (--wait-idle)
Settle = Callable[[], None]

TARGETS = {"store_p99_ms": 20.0, "read_p99_ms": 10.0, "diff_ms": 50.0}


@dataclass(frozen=True)
class Shape:
    keys: int  # properties of the stored configuration
    secrets: int  # of which writeOnly
    changed_per_store: int  # values changed between two stored versions
    diff_keys: int  # leaves of each diffed version
    diff_nested: int  # of which inside nested objects (10 leaves each)
    diff_secrets: int
    diff_changed_share: float
    requests: int  # measured requests per kind
    secret_requests: int  # measured reads with config:secrets (each writes an audit row)
    diff_requests: int
    diff_repeats: int  # in-process diffs
    warmup: int


FULL = Shape(200, 8, 5, 1_000, 100, 20, 0.1, 1_000, 500, 200, 100, 50)
QUICK = Shape(200, 8, 5, 1_000, 100, 20, 0.1, 100, 50, 20, 10, 10)


def run(options) -> None:
    shape = QUICK if options.quick else FULL
    rng = random.Random(SEED)
    print(f"config benchmark: {shape.keys}-key configuration, {shape.diff_keys}-key diff")
    print(f"creating and migrating the database {DATABASE!r} ...", flush=True)
    url = support.create_database(DATABASE)
    support.setup_django(url)

    from portal import gc_tuning, tokens
    from portal.auth import system_actor

    # In-process figures are taken with the garbage collector set up as the web and worker
    # processes set it up (portal/wsgi.py, portal/celery.py): with CPython's defaults, full
    # collections land in the timed calls (diff p99 87-93 ms instead of 38-48 ms).
    gc_tuning.tune()
    seed_services()
    tokens_by_role = {
        "write": tokens.issue_token(
            "bench-write", ["config:read", "config:write"], issuer=system_actor("bench")
        ).secret,
        "read": tokens.issue_token(
            "bench-read", ["config:read"], issuer=system_actor("bench")
        ).secret,
        "secrets": tokens.issue_token(
            "bench-secrets", ["config:read", "config:secrets"], issuer=system_actor("bench")
        ).secret,
    }
    settle = functools.partial(support.settle, options.wait_idle)
    results = {
        "benchmark": NAME,
        "machine": support.machine_info(url),
        "shape": asdict(shape),
        "targets": TARGETS,
        "wait_idle_s": options.wait_idle,
    }
    print("storing two 1,000-key versions and timing the diff in-process ...", flush=True)
    diff_versions = seed_diff_versions(shape, rng)
    results["diff_dataset"] = diff_versions
    results["diff_in_process"] = time_diff_in_process(shape, diff_versions, settle)
    close_django_connections()

    print("starting gunicorn ...", flush=True)
    with support.gunicorn(url, workers=2) as server:
        clients = {role: support.Client(server.port, t) for role, t in tokens_by_role.items()}
        results["server"] = {"workers": 2, "worker_class": "sync", "clients": 1}
        print(f"through http://127.0.0.1:{server.port} ...", flush=True)
        results["http"] = time_http(clients, shape, rng, diff_versions, settle)
        for client in clients.values():
            client.close()
    print("timing the steps of a store and a read in-process ...", flush=True)
    results["steps_in_process"] = time_steps(shape, settle)
    results["audit"] = audit_counts()
    results["verdicts"] = verdicts(results)
    support.finish(NAME, results, report, quick=options.quick, smoke="with few requests")


def close_django_connections() -> None:
    from django.db import connections

    connections.close_all()


# --- Schemas and values -----------------------------------------------------------------------

ENVIRONMENTS = ["dev", "test", "staging", "production", "sandbox"]
LOG_LEVELS = ["debug", "info", "warning", "error"]


def property_schema(index: int, secret: bool) -> dict:
    """One property: eight kinds in turn (integers and numbers with bounds, enums, patterned
    and bounded strings, booleans, bounded arrays, integers with a default)."""
    if secret:
        return {"type": "string", "minLength": 8, "maxLength": 200, "writeOnly": True}
    kind = index % 8
    if kind == 0:
        return {"type": "integer", "minimum": 0, "maximum": 100_000}
    if kind == 1:
        return {"type": "number", "minimum": 0.0, "maximum": 1.0}
    if kind == 2:
        return {"type": "string", "enum": ENVIRONMENTS}
    if kind == 3:
        return {"type": "string", "pattern": "^[a-z0-9][a-z0-9.-]*$", "maxLength": 64}
    if kind == 4:
        return {"type": "boolean"}
    if kind == 5:
        return {"type": "array", "items": {"type": "string", "maxLength": 40}, "maxItems": 10}
    if kind == 6:
        return {"type": "integer", "minimum": 1, "maximum": 3600, "default": 30}
    return {"type": "string", "enum": LOG_LEVELS}


def random_value(schema: dict, rng: random.Random):
    if schema.get("writeOnly"):
        return f"s3cr3t-{rng.getrandbits(64):016x}"
    if "enum" in schema:
        return rng.choice(schema["enum"])
    kind = schema["type"]
    if kind == "integer":
        return rng.randint(schema["minimum"], schema["maximum"])
    if kind == "number":
        return round(rng.random(), 4)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        return [f"item-{rng.randrange(1000)}" for _ in range(rng.randint(0, 5))]
    return f"host-{rng.randrange(10_000)}.example.internal"


def flat_schema(keys: int, secrets: int) -> tuple[dict, list[str]]:
    """A JSON Schema with ``keys`` properties, ``secrets`` of them writeOnly (spread out),
    every other one required; and the property names."""
    secret_every = keys // secrets
    names, properties = [], {}
    for i in range(keys):
        secret = i % secret_every == secret_every - 1
        name = f"secret_{i:03d}" if secret else f"key_{i:03d}"
        properties[name] = property_schema(i, secret)
        names.append(name)
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "required": names[::2],
    }
    return schema, names


def changed_values(values: dict, schema: dict, rng: random.Random, count: int) -> dict:
    """A copy with ``count`` values changed (secrets among them now and then)."""
    changed = dict(values)
    for name in rng.sample(sorted(values), count):
        changed[name] = _new_value(schema["properties"][name], values[name], rng)
    return changed


def _other(schema: dict, value):
    """Another allowed value than ``value`` (enums and booleans can repeat at random)."""
    if "enum" in schema:
        return schema["enum"][(schema["enum"].index(value) + 1) % len(schema["enum"])]
    if schema.get("type") == "boolean":
        return not value
    return value


def seed_services() -> None:
    from services.models import Service, Team

    team = Team.objects.create(name="bench", display_name="Bench")
    for name in (SERVICE, DIFF_SERVICE):
        Service.objects.create(name=name, team=team, display_name=name)


# --- The 1,000-key versions and the diff in-process -------------------------------------------


def nested_schema(shape: Shape) -> tuple[dict, dict]:
    """A schema of ``shape.diff_keys`` leaves: flat properties and, for ``diff_nested`` of
    them, objects of 10 leaves; ``diff_secrets`` writeOnly leaves (half of them nested).
    Ten more optional flat properties exist for the additions. Returns the schema and the
    leaves of a first document."""
    groups = shape.diff_nested // 10
    flat = shape.diff_keys - shape.diff_nested
    nested_secrets = min(groups, shape.diff_secrets // 2)
    flat_secrets = shape.diff_secrets - nested_secrets
    properties: dict = {}
    step = flat // flat_secrets
    for i in range(flat + 10):
        secret = i < flat and i % step == step - 1
        sub = property_schema(i, secret)
        if i >= flat:
            sub.pop("default", None)  # absent from the first version, and not filled in
        properties[f"{'secret' if secret else 'key'}_{i:04d}"] = sub
    for g in range(groups):
        leaves = {f"field_{j}": property_schema(g * 10 + j, False) for j in range(10)}
        if g < nested_secrets:
            leaves["field_9"] = property_schema(0, True)
        properties[f"group_{g:02d}"] = {"type": "object", "properties": leaves}
    schema = {"type": "object", "properties": properties}
    return schema, {"flat": flat, "groups": groups}


def first_document(schema: dict, layout: dict, rng: random.Random) -> dict:
    document = {}
    for n, (name, sub) in enumerate(schema["properties"].items()):
        if name.startswith("group_"):
            document[name] = {k: random_value(v, rng) for k, v in sub["properties"].items()}
        elif n < layout["flat"]:
            document[name] = random_value(sub, rng)
    return document


def second_document(
    first: dict, schema: dict, rng: random.Random, share: float, total: int
) -> tuple[dict, dict]:
    """About ``share`` of the leaves differ: 5 removed, 5 added, the rest changed (flat and
    nested, secrets included)."""
    second = {k: dict(v) if isinstance(v, dict) else v for k, v in first.items()}
    wanted = round(total * share)
    flat = [k for k in first if not k.startswith("group_")]
    extra = [k for k in schema["properties"] if k not in first]
    # Only keys without a default can go: the schema's default would fill a removed one in.
    removed = rng.sample([k for k in flat if "default" not in schema["properties"][k]], 5)
    for name in removed:
        del second[name]
    for name in extra[:5]:
        second[name] = random_value(schema["properties"][name], rng)
    leaves = [(k,) for k in flat if k not in removed] + [
        (g, f) for g in first if g.startswith("group_") for f in first[g]
    ]
    changed = rng.sample(leaves, wanted - 10)
    for path in changed:
        if len(path) == 1:
            sub = schema["properties"][path[0]]
            second[path[0]] = _new_value(sub, first[path[0]], rng)
        else:
            sub = schema["properties"][path[0]]["properties"][path[1]]
            second[path[0]][path[1]] = _new_value(sub, first[path[0]][path[1]], rng)

    def is_secret(path: tuple) -> bool:
        sub = schema["properties"][path[0]]
        return bool((sub["properties"][path[1]] if len(path) == 2 else sub).get("writeOnly"))

    return second, {
        "removed": 5,
        "added": 5,
        "changed": len(changed),
        "changed_nested": sum(1 for p in changed if len(p) == 2),
        "changed_secrets": sum(1 for p in changed if is_secret(p)),
    }


def _new_value(schema: dict, old, rng: random.Random):
    for _ in range(20):
        value = random_value(schema, rng)
        if value != old:
            return value
    return _other(schema, old)


def seed_diff_versions(shape: Shape, rng: random.Random) -> dict:
    """The 1,000-key schema and two versions of DIFF_SERVICE, stored with
    ``configs.publish`` (validated, secrets encrypted) like any other write."""
    from portal.auth import system_actor
    from services import configs

    actor = system_actor("bench")
    schema, layout = nested_schema(shape)
    configs.put_schema(DIFF_SERVICE, schema, actor)
    first = first_document(schema, layout, rng)
    second, changes = second_document(first, schema, rng, shape.diff_changed_share, shape.diff_keys)
    a = configs.publish(DIFF_SERVICE, first, 0, actor).version
    b = configs.publish(DIFF_SERVICE, second, a.version, actor).version
    diff = configs.diff(DIFF_SERVICE, a.version, b.version)
    counts = {kind: len(diff[kind]) for kind in ("added", "removed", "changed")}
    leaves = len(configs.flatten(configs.reveal(a), a.secret_paths))
    if leaves != shape.diff_keys:
        raise RuntimeError(f"the first diffed version has {leaves} leaves, not {shape.diff_keys}")
    return {
        "service": DIFF_SERVICE,
        "from_version": a.version,
        "to_version": b.version,
        "leaves": leaves,
        "secret_paths": len(a.secret_paths),
        "nested_objects": layout["groups"],
        "made": changes,
        "diff_counts": counts,
        "diff_secret_entries": sum(
            1 for kind in ("added", "removed", "changed") for e in diff[kind] if e.get("secret")
        ),
    }


def time_diff_in_process(shape: Shape, versions: dict, settle: Settle) -> dict:
    """``configs.diff`` (two version reads, decryption of both versions' secrets, flatten and
    compare) repeated; and its parts, to see where the time goes."""
    from services import configs

    name, a, b = versions["service"], versions["from_version"], versions["to_version"]
    configs.diff(name, a, b)  # warm-up
    settle()
    samples = []
    with support.cpu_usage() as cpu:
        for _ in range(shape.diff_repeats):
            samples.append(support.timed(configs.diff, name, a, b)[0])
    service = configs.get_service(name)
    old, new = configs.get_version(service, a), configs.get_version(service, b)
    paths = configs.merged_paths(old.secret_paths, new.secret_paths)
    revealed_old, revealed_new = configs.reveal(old), configs.reveal(new)
    parts = {"load_versions": [], "reveal_both": [], "diff_documents": []}

    def load_both():
        return configs.get_version(service, a), configs.get_version(service, b)

    def reveal_both():
        return configs.reveal(old), configs.reveal(new)

    for _ in range(shape.diff_repeats):
        parts["load_versions"].append(support.timed(load_both)[0])
        parts["reveal_both"].append(support.timed(reveal_both)[0])
        parts["diff_documents"].append(
            support.timed(configs.diff_documents, revealed_old, revealed_new, paths)[0]
        )
    return {
        "diff": support.summarise_ms(samples),
        **{part: support.summarise_ms(values) for part, values in parts.items()},
        **cpu,
    }


def time_steps(shape: Shape, settle: Settle) -> dict:
    """Where a store and a read of the 200-key configuration spend their time: the queries
    (with and without the schema documents they load) and the Python steps of
    ``configs.publish``, ``configs.read`` and the env rendering, each timed alone."""
    from portal import encryption, tokens
    from services import config_schema, configs, dotenv

    service = configs.get_service(SERVICE)
    version, schema = configs.current_version(service), configs.current_schema(service)
    paths = schema.secret_paths
    document = configs.read(SERVICE, None, reveal_secrets=False, actor="bench")
    effective = configs.reveal(version)
    validator = config_schema.validator_for(schema)
    versions = service.config_versions.order_by("-version")

    def env_hidden():  # what services.config_api.read_config computes for format=env
        return configs.hidden_env_leaves(document)

    hidden = env_hidden()
    steps = {
        "token lookup (find_token)": lambda: tokens.find_token("svp_" + "x" * 40),
        "get_service": lambda: configs.get_service(SERVICE),
        "current_version": lambda: configs.current_version(service),
        "  with its schema document joined in": lambda: versions.select_related("schema").first(),
        "current_schema (whole row)": lambda: configs.current_schema(service),
        "  only id and version": lambda: (
            service.config_schemas.order_by("-version").only("id", "version").first()
        ),
        "reveal (decrypt secrets)": lambda: configs.reveal(version),
        "keep_masked_secrets (current version revealed)": lambda: configs.keep_masked_secrets(
            effective, effective, paths
        ),
        "validate (defaults + validation)": lambda: configs.validate(effective, schema, "strict"),
        "  validator_for (cache lookup)": lambda: config_schema.validator_for(schema),
        "  jsonschema iter_errors": lambda: list(validator.iter_errors(effective)),
        "content_hash": lambda: encryption.content_hash(effective),
        "encrypt secrets (map_secrets)": lambda: configs.map_secrets(
            effective, paths, lambda v, _: encryption.encrypt(v)
        ),
        "diff_documents (audit summary)": lambda: configs.diff_documents(
            effective, effective, paths
        ),
        "configs.read (all of it)": lambda: configs.read(
            SERVICE, None, reveal_secrets=False, actor="bench"
        ),
        "env: which leaves are secret (config_api)": env_hidden,
        "env: to_dotenv": lambda: dotenv.to_dotenv(document["values"], hidden=hidden),
    }
    settle()
    results = {}
    for name, step in steps.items():
        step()
        samples = [support.timed(step)[0] for _ in range(shape.diff_repeats * 2)]
        results[name] = support.summarise_ms(samples)
    return results


# --- Through gunicorn -------------------------------------------------------------------------


def measure(send: Callable[[int], support.Response], n: int, warmup: int, settle: Settle) -> dict:
    """``send(i)`` for i in range(warmup + n); the last n are measured, in blocks of CHUNK
    (each waits for an idle machine first with --wait-idle)."""
    for i in range(warmup):
        send(i)
    samples, sizes, busy, elapsed = [], [], [], 0.0
    for start in range(0, n, CHUNK):
        settle()
        with support.cpu_usage() as cpu:
            started = time.perf_counter()
            for i in range(start, min(n, start + CHUNK)):
                response = send(warmup + i)
                samples.append(response.seconds)
                sizes.append(len(response.body))
            elapsed += time.perf_counter() - started
        busy.append(cpu["machine_busy_pct"])
    return {
        **support.summarise_ms(samples),
        "machine_busy_pct": round(sum(busy) / len(busy), 1),
        "machine_busy_pct_max": max(busy),
        "requests_per_s": round(n / elapsed, 1),
        "mean_response_bytes": round(sum(sizes) / len(sizes)),
    }


def time_http(
    clients: dict[str, support.Client],
    shape: Shape,
    rng: random.Random,
    diff_versions: dict,
    settle: Settle,
) -> dict:
    writer, reader, secret_reader = clients["write"], clients["read"], clients["secrets"]
    base = f"/api/services/{SERVICE}/config"
    schema, names = flat_schema(shape.keys, shape.secrets)
    results: dict = {}

    started = time.perf_counter()
    answer = writer.request("PUT", f"{base}/schema", schema, expect=201).json()
    results["put_schema"] = {
        "ms": round((time.perf_counter() - started) * 1000, 2),
        "properties": len(schema["properties"]),
        "secret_paths": len(answer["secret_paths"]),
        "body_bytes": len(json.dumps(schema)),
    }
    values = {name: random_value(schema["properties"][name], rng) for name in names}
    current = writer.request("POST", base, {"values": values, "base_version": 0}, expect=201)
    state = {"values": values, "version": current.json()["version"]}

    def store(_i: int) -> support.Response:
        state["values"] = changed_values(state["values"], schema, rng, shape.changed_per_store)
        body = {"values": state["values"], "base_version": state["version"]}
        response = writer.request("POST", base, body, expect=201)
        state["version"] = response.json()["version"]
        return response

    print("  storing versions ...", flush=True)
    results["store"] = measure(store, shape.requests, shape.warmup, settle)
    results["store"]["request_bytes"] = len(
        json.dumps({"values": state["values"], "base_version": state["version"]})
    )

    def validate(_i: int) -> support.Response:
        candidate = changed_values(state["values"], schema, rng, shape.changed_per_store)
        body = {"values": candidate, "base_version": state["version"]}
        response = writer.request("POST", f"{base}/validate", body)
        if response.json()["valid"] is not True:
            raise RuntimeError(f"validate: {response.body[:300]!r}")
        return response

    print("  validating (dry runs) ...", flush=True)
    results["validate"] = measure(validate, shape.requests, shape.warmup, settle)

    def getter(client: support.Client, path: str):
        return lambda _i: client.get(path)

    # This machine's PostgreSQL runs without autovacuum, so nothing would analyze the 1,000
    # versions just stored and reads would be planned for an empty table; a server with
    # autovacuum (the default) analyzes a table once a tenth of it has changed.
    support.analyze()
    reads = {
        "read_json": (reader, base, shape.requests),
        "read_env": (reader, f"{base}?format=env", shape.requests),
        "read_json_secrets": (secret_reader, base, shape.secret_requests),
        "read_env_secrets": (secret_reader, f"{base}?format=env", shape.secret_requests),
    }
    check_reads(reader, secret_reader, base, state["values"], names)
    for key, (client, path, n) in reads.items():
        print(f"  {key} ...", flush=True)
        results[key] = {**measure(getter(client, path), n, shape.warmup, settle), "path": path}

    diff_path = (
        f"/api/services/{diff_versions['service']}/config/diff"
        f"?from_version={diff_versions['from_version']}&to_version={diff_versions['to_version']}"
    )
    print("  diff ...", flush=True)
    results["diff"] = {
        **measure(getter(reader, diff_path), shape.diff_requests, 5, settle),
        "path": diff_path,
    }
    results["stored_versions"] = state["version"]
    return results


def check_reads(reader, secret_reader, base: str, values: dict, names: list[str]) -> None:
    """The reads answer what was stored: secrets masked (JSON) or left out (env) for a
    config:read token, in clear for a config:secrets one."""
    masked = reader.get(base).json()["values"]
    clear = secret_reader.get(base).json()["values"]
    secrets = [n for n in names if n.startswith("secret_")]
    if clear != values or any(masked[s] != "********" for s in secrets):
        raise RuntimeError("the configuration read back differs from the one stored")
    env = reader.get(f"{base}?format=env").body.decode()
    first = f"KEY_000='{values['key_000']}'"
    if env.count("omitted: a secret") != len(secrets) or first not in env:
        raise RuntimeError(f"unexpected env document: {env[:300]!r}")


def audit_counts() -> dict:
    from django.db.models import Count

    from portal.models import AuditEntry

    return dict(AuditEntry.objects.values_list("action").annotate(n=Count("id")))


# --- Report -----------------------------------------------------------------------------------


def verdicts(results: dict) -> dict:
    http, diff = results["http"], results["diff_in_process"]["diff"]

    def check(value: float, target: float) -> dict:
        return {"value": value, "target": target, "met": value < target}

    read_keys = ("read_json", "read_env", "read_json_secrets", "read_env_secrets")
    return {
        "store_p99_ms": check(http["store"]["p99_ms"], TARGETS["store_p99_ms"]),
        **{
            f"{key}_p99_ms": check(http[key]["p99_ms"], TARGETS["read_p99_ms"]) for key in read_keys
        },
        "diff_in_process_p99_ms": check(diff["p99_ms"], TARGETS["diff_ms"]),
        "diff_in_process_max_ms": check(diff["max_ms"], TARGETS["diff_ms"]),
        "diff_http_p99_ms": check(http["diff"]["p99_ms"], TARGETS["diff_ms"]),
    }


def _mark(verdict: dict) -> str:
    return "met" if verdict["met"] else "MISSED"


def _http_row(row: dict) -> list:
    return [row["n"], row["min_ms"], row["p50_ms"], row["p95_ms"], row["p99_ms"], row["max_ms"],
            row["requests_per_s"], row["machine_busy_pct"]]  # fmt: skip


def report(results: dict) -> None:
    machine, http, v = results["machine"], results["http"], results["verdicts"]
    inproc, dataset = results["diff_in_process"], results["diff_dataset"]
    print(
        f"\n{machine['cpu_count']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
        f"PostgreSQL {machine['postgresql']}, Django {machine['django']}, "
        f"gunicorn {machine['gunicorn']} (2 sync workers, 1 client)"
    )
    print(
        f"PUT schema ({http['put_schema']['properties']} properties, "
        f"{http['put_schema']['secret_paths']} secrets): {http['put_schema']['ms']} ms"
    )
    header = ["request", "n", "min", "p50", "p95", "p99", "max", "req/s", "busy%", "target", ""]
    support.print_table(
        "HTTP (ms per request)",
        header,
        [
            ["POST config (store, 5 values changed)", *_http_row(http["store"]),
             "p99 < 20", _mark(v["store_p99_ms"])],
            ["POST config/validate (dry run)", *_http_row(http["validate"]), "", ""],
            ["GET config (config:read)", *_http_row(http["read_json"]),
             "p99 < 10", _mark(v["read_json_p99_ms"])],
            ["GET config?format=env (config:read)", *_http_row(http["read_env"]),
             "p99 < 10", _mark(v["read_env_p99_ms"])],
            ["GET config (config:secrets)", *_http_row(http["read_json_secrets"]),
             "p99 < 10", _mark(v["read_json_secrets_p99_ms"])],
            ["GET config?format=env (config:secrets)", *_http_row(http["read_env_secrets"]),
             "p99 < 10", _mark(v["read_env_secrets_p99_ms"])],
            ["GET config/diff (1,000 keys)", *_http_row(http["diff"]),
             "p99 < 50", _mark(v["diff_http_p99_ms"])],
        ],
    )  # fmt: skip
    counts = dataset["diff_counts"]
    support.print_table(
        f"configs.diff in-process, {dataset['leaves']:,} leaves ({counts['changed']} changed, "
        f"{counts['added']} added, {counts['removed']} removed, "
        f"{dataset['diff_secret_entries']} secret entries; machine {inproc['machine_busy_pct']}% "
        "busy)",
        ["step", "n", "min", "p50", "p99", "max", "target", ""],
        [
            ["configs.diff", *_inproc_row(inproc["diff"]),
             "< 50", _mark(v["diff_in_process_max_ms"])],
            ["  two version reads", *_inproc_row(inproc["load_versions"]), "", ""],
            ["  decrypt both versions' secrets", *_inproc_row(inproc["reveal_both"]), "", ""],
            ["  flatten and compare", *_inproc_row(inproc["diff_documents"]), "", ""],
        ],
    )  # fmt: skip
    support.print_table(
        f"Steps in-process, {SERVICE} ({results['shape']['keys']} keys)",
        ["step", "n", "min", "p50", "p99", "max"],
        [[name, *_inproc_row(row)] for name, row in results["steps_in_process"].items()],
    )
    print(f"audit rows: {results['audit']}")


def _inproc_row(row: dict) -> list:
    return [row["n"], row["min_ms"], row["p50_ms"], row["p99_ms"], row["max_ms"]]
