"""The seed's maintenance routines (backend-migration-guide, "Maintenance Guidelines"), every
item of them, with the evidence the portal can show beside an item. Installed by a migration;
edited in the admin afterwards."""

# (name, title, period, [(section, [(item, evidence[, verify])])])
ROUTINES: list[tuple[str, str, str, list[tuple[str, list[tuple[str, ...]]]]]] = [
    (
        "daily",
        "Daily maintenance",
        "daily",
        [
            (
                "Health Monitoring",
                [
                    ("Check system health dashboard", "health"),
                    ("Review health check metrics", "failing_checks"),
                    ("Monitor error rates and response times", "slow_checks"),
                    ("Check for predictive alerts", "predictions"),
                ],
            ),
            (
                "Log Analysis",
                [
                    ("Review error logs for issues", ""),
                    ("Check for security alerts", ""),
                    ("Monitor performance metrics", ""),
                    ("Analyze usage patterns", ""),
                ],
            ),
        ],
    ),
    (
        "weekly",
        "Weekly maintenance",
        "weekly",
        [
            (
                "Configuration Review",
                [
                    ("Review service configurations", ""),
                    ("Check for configuration drift", "drift"),
                    ("Validate environment variables", ""),
                    ("Update configuration schemas if needed", ""),
                ],
            ),
            (
                "Performance Analysis",
                [
                    ("Analyze performance trends", ""),
                    ("Review resource usage", ""),
                    ("Check for bottlenecks", "slow_checks"),
                    ("Optimize slow operations", ""),
                ],
            ),
        ],
    ),
    (
        "monthly",
        "Monthly maintenance",
        "monthly",
        [
            (
                "Security Review",
                [
                    ("Review security logs", ""),
                    ("Check for vulnerabilities", ""),
                    ("Update security rules", ""),
                    ("Test security automation", ""),
                ],
            ),
            (
                "Architecture Review",
                [
                    ("Review service dependencies", "dependencies"),
                    ("Check for new duplication", ""),
                    ("Plan for scaling needs", ""),
                    ("Update documentation", ""),
                ],
            ),
        ],
    ),
    (
        "quarterly",
        "Quarterly maintenance",
        "quarterly",
        [
            (
                "Comprehensive Review",
                [
                    ("Full system health assessment", "health"),
                    ("Performance benchmarking", ""),
                    ("Security audit", ""),
                    ("Architecture evolution planning", ""),
                ],
            ),
            (
                "Training and Documentation",
                [
                    ("Update team training", ""),
                    ("Refresh documentation", ""),
                    ("Share lessons learned", ""),
                    ("Plan improvements", ""),
                ],
            ),
        ],
    ),
    # Per service, started from the maintenance page or by a rule (seed: "Pre-Migration
    # Checklist", "Post-Migration Validation").
    (
        "pre-migration",
        "Pre-migration checklist",
        "service",
        [
            (
                "Environment Setup",
                [
                    ("Python 3.8+ installed", ""),
                    ("Virtual environment created and activated", ""),
                    ("Dependencies installed (pip install -r requirements.txt)", ""),
                    ("Database migrations completed", ""),
                    ("Environment variables configured", ""),
                ],
            ),
            (
                "Code Analysis",
                [
                    ("Audit existing code for duplication", ""),
                    ("Identify services to migrate", ""),
                    ("Document current API endpoints", ""),
                    ("List configuration parameters", ""),
                    ("Identify health check requirements", ""),
                ],
            ),
            (
                "Testing Preparation",
                [
                    ("Existing tests documented", ""),
                    ("Test data prepared", ""),
                    ("Performance baselines established", ""),
                    ("Rollback plan created", ""),
                ],
            ),
        ],
    ),
    (
        "post-migration",
        "Post-migration validation",
        "service",
        [
            (
                "Functional Testing",
                [
                    ("All services start successfully", "", "dependencies_healthy"),
                    ("Health checks return healthy status", "", "checks_healthy"),
                    ("API endpoints respond correctly", ""),
                    ("Configuration is loaded and validated", "", "config_valid"),
                    ("Error handling works as expected", ""),
                    ("Logging is structured and informative", ""),
                    ("Security middleware is active", ""),
                    ("Rate limiting is working", ""),
                    ("Input validation is enforced", ""),
                ],
            ),
        ],
    ),
]


def install(apps) -> None:
    """Create the routines that do not exist yet (``apps``: a migration's, or django.apps)."""
    Template = apps.get_model("checklists", "ChecklistTemplate")
    Item = apps.get_model("checklists", "ChecklistItem")
    for position, (name, title, period, sections) in enumerate(ROUTINES):
        template, created = Template.objects.get_or_create(
            name=name, defaults={"title": title, "period": period, "position": position}
        )
        if not created:
            continue
        n = 0
        for section, items in sections:
            for text, evidence, *verify in items:
                Item.objects.create(
                    template=template,
                    section=section,
                    text=text,
                    position=n,
                    evidence=evidence,
                    verify=verify[0] if verify else "",
                )
                n += 1
