"""The checks a phase of the health benchmark creates (in bulk, as healthchecks.checks creates
them), disables when it is done, and the services without checks it adds for the
10,000-service listing."""

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass
class CheckSet:
    """Checks created for a phase, with the first due time of each (the grid they run on)."""

    name: str
    ids: list[int]
    first_due: dict[int, datetime]
    interval: int
    services: list[str]


def create_checks(
    prefix: str,
    count: int,
    *,
    target: str,
    interval: int,
    timeout: float,
    first_due: datetime,
    spread: bool = True,
    options: dict | None = None,
) -> CheckSet:
    """``count`` services with one HTTP check each, created in bulk as healthchecks.checks
    creates them (a HealthCheck, its CheckState and CheckSchedule). With ``spread`` the first
    due times are spread evenly over one interval, otherwise they are all ``first_due``."""
    from django.db import transaction
    from django.utils import timezone

    from healthchecks.models import CheckSchedule, CheckState, HealthCheck
    from services.models import Service, Team

    now = timezone.now()
    with transaction.atomic():
        team, _ = Team.objects.get_or_create(name="bench-health")
        services = Service.objects.bulk_create(
            Service(name=f"{prefix}-{i:05d}", team=team, created_at=now, updated_at=now)
            for i in range(count)
        )
        checks = HealthCheck.objects.bulk_create(
            HealthCheck(
                service=service,
                name="http",
                kind="http",
                target=target,
                interval=interval,
                timeout=timeout,
                retries=0,
                is_critical=True,
                options=options or {},
                created_at=now,
                updated_at=now,
            )
            for service in services
        )
        CheckState.objects.bulk_create(CheckState(health_check=check) for check in checks)
        schedules = CheckSchedule.objects.bulk_create(
            CheckSchedule(
                health_check=check,
                next_due_at=first_due
                + (timedelta(seconds=interval * i / count) if spread else timedelta()),
            )
            for i, check in enumerate(checks)
        )
    return CheckSet(
        name=prefix,
        ids=[c.pk for c in checks],
        first_due={s.health_check_id: s.next_due_at for s in schedules},
        interval=interval,
        services=[s.name for s in services],
    )


def disable(check_sets: list[CheckSet]) -> None:
    """As healthchecks.checks.save disables checks: off, and off the schedule."""
    from django.db import transaction

    from healthchecks.models import CheckSchedule, HealthCheck

    ids = [i for s in check_sets for i in s.ids]
    with transaction.atomic():
        HealthCheck.objects.filter(pk__in=ids).update(enabled=False)
        CheckSchedule.objects.filter(health_check_id__in=ids).delete()


def add_services(count: int, prefix: str = "extra") -> None:
    """Services without checks, each with a (healthy) status row, as /health/services
    would show a large estate: for the 10,000-service listing."""
    from django.db import transaction
    from django.utils import timezone

    from healthchecks.models import ServiceHealth
    from healthchecks.status import Status
    from services.models import Service, Team

    now = timezone.now()
    with transaction.atomic():
        team, _ = Team.objects.get_or_create(name="bench-health")
        services = Service.objects.bulk_create(
            (
                Service(name=f"{prefix}-{i:05d}", team=team, created_at=now, updated_at=now)
                for i in range(count)
            ),
            batch_size=2000,
        )
        ServiceHealth.objects.bulk_create(
            (
                ServiceHealth(service=s, status=Status.HEALTHY, since=now, updated_at=now)
                for s in services
            ),
            batch_size=2000,
        )
