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
            "deployed_version": "1.27.3",
            "dependencies": ["auth", "payments", {"service": "notifications", "kind": "soft"}],
        },
    ],
}

# Lifecycle statuses the demo services are moved to (through legal transitions).
DEMO_LIFECYCLE = {
    "postgres-main": ["running"],
    "redis-cache": ["running"],
    "auth": ["starting", "running"],
    "ledger": ["running"],
    "payments": ["starting", "running", "degraded"],
    "notifications": ["stopped"],
    "api-gateway": ["running"],
}
