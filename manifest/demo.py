"""Demo registry for `make run`: a few teams and services with dependencies, so the pages
show something real on a fresh clone."""

DEMO_MANIFEST = {
    "teams": [
        {"name": "platform", "display_name": "Platform", "contact": "#platform"},
        {"name": "payments", "display_name": "Payments", "contact": "#payments"},
        {"name": "identity", "display_name": "Identity", "contact": "#identity"},
    ],
    "services": [
        {
            "name": "postgres-main",
            "team": "platform",
            "display_name": "Main PostgreSQL",
            "is_critical": True,
            "tags": ["datastore", "tier:0"],
        },
        {
            "name": "redis-cache",
            "team": "platform",
            "display_name": "Redis cache",
            "tags": ["datastore"],
        },
        {
            "name": "auth",
            "team": "identity",
            "display_name": "Authentication",
            "is_critical": True,
            "tags": ["tier:1"],
            "deployed_version": "3.4.1",
            "dependencies": ["postgres-main", {"service": "redis-cache", "kind": "soft"}],
            "repository_url": "https://git.example.internal/identity/auth",
            "runbook_url": "https://docs.example.internal/runbooks/auth",
        },
        {
            "name": "ledger",
            "team": "payments",
            "display_name": "Ledger",
            "is_critical": True,
            "tags": ["tier:1"],
            "deployed_version": "12.0.3",
            "dependencies": ["postgres-main"],
        },
        {
            "name": "payments",
            "team": "payments",
            "display_name": "Payments API",
            "is_critical": True,
            "tags": ["tier:1", "public"],
            "slo_target": 99.9,
            "deployed_version": "2024.11.2",
            "dependencies": ["auth", "ledger", {"service": "redis-cache", "kind": "soft"}],
        },
        {
            "name": "notifications",
            "team": "platform",
            "display_name": "Notifications",
            "tags": ["tier:2"],
            "deployed_version": "0.9.0",
            "dependencies": [{"service": "redis-cache", "kind": "soft"}],
        },
        {
            "name": "api-gateway",
            "team": "platform",
            "display_name": "API gateway",
            "is_critical": True,
            "tags": ["public", "tier:0"],
            "slo_target": 99.95,
            "deployed_version": "1.27.3",
            "dependencies": ["auth", "payments", {"service": "notifications", "kind": "soft"}],
        },
        {
            "name": "reports",
            "team": "payments",
            "display_name": "Monthly reports",
            "description": "No checks yet: its status stays unknown.",
            "dependencies": [{"service": "ledger", "kind": "soft"}],
        },
    ],
}

# Checks against the demo targets the portal serves itself (healthchecks/watch/demo.py), so every
# status shows up within a minute. "{base}" is DEMO_BASE_URL.
DEMO_CHECKS = {
    "postgres-main": [{"name": "http", "kind": "http", "target": "{base}/demo/healthy"}],
    "redis-cache": [{"name": "http", "kind": "http", "target": "{base}/demo/flaky", "retries": 1}],
    "auth": [{"name": "health", "kind": "http", "target": "{base}/demo/health-json"}],
    "ledger": [
        {
            "name": "http",
            "kind": "http",
            "target": "{base}/demo/degrading",
            "latency_threshold_ms": 400,
        }
    ],
    "payments": [
        {"name": "http", "kind": "http", "target": "{base}/demo/slow", "latency_threshold_ms": 500},
        {
            "name": "worker",
            "kind": "heartbeat",
            "interval": 60,
            "grace": 30,
            "timeout": 5,
            "critical": False,
        },
    ],
    "notifications": [{"name": "http", "kind": "http", "target": "{base}/demo/down"}],
    "api-gateway": [{"name": "http", "kind": "http", "target": "{base}/demo/healthy"}],
}
DEMO_CHECK_DEFAULTS = {"interval": 10, "timeout": 3}


def demo_manifest(base_url: str) -> dict:
    """The demo registry with its checks pointed at ``base_url``."""
    services = []
    for item in DEMO_MANIFEST["services"]:
        checks = [
            {
                **DEMO_CHECK_DEFAULTS,
                **check,
                **({"target": check["target"].format(base=base_url)} if "target" in check else {}),
            }
            for check in DEMO_CHECKS.get(item["name"], [])
        ]
        services.append({**item, "checks": checks} if checks else item)
    return {"teams": DEMO_MANIFEST["teams"], "services": services}


# Lifecycle statuses the demo services are moved to (through legal transitions).
DEMO_LIFECYCLE = {
    "postgres-main": ["running"],
    "redis-cache": ["running"],
    "auth": ["starting", "running"],
    "ledger": ["running"],
    "payments": ["starting", "running", "degraded"],
    # Failed, not stopped: a stopped service is not probed (issue 22), and the demo wants one
    # whose failing check and runbook show.
    "notifications": ["starting", "failed"],
    "api-gateway": ["running"],
}

# The seed's example schema, with a secret added, for the payments service.
DEMO_SCHEMA = {
    "required_fields": ["rag_database_url", "api_timeout"],
    "optional_fields": ["max_retries", "enable_caching", "log_level", "db_password"],
    "field_types": {
        "rag_database_url": "str",
        "api_timeout": "int",
        "max_retries": "int",
        "enable_caching": "bool",
        "log_level": "str",
        "db_password": "str",
    },
    "field_defaults": {
        "rag_database_url": "sqlite:///app.db",
        "api_timeout": 30,
        "max_retries": 3,
        "enable_caching": True,
        "log_level": "INFO",
    },
    "validation_rules": {
        "api_timeout": {"min": 1, "max": 300},
        "max_retries": {"min": 0, "max": 10},
        "log_level": {"choices": ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]},
    },
    "secret_fields": ["db_password"],
}
DEMO_CONFIGS = [
    {"api_timeout": 20, "db_password": "demo-password-1"},
    {"api_timeout": 45, "log_level": "DEBUG", "db_password": "demo-password-1"},
]
