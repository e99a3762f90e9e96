# syntax=docker/dockerfile:1
# One image for web, worker and beat; docker-compose.yml picks the command.
# (Bump the tag in deploy/k8s/kustomization.yaml and docker-compose.yml with the version.)
FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The dependencies first, exactly as locked (hashes checked; nothing outside the lock), so
# the image and CI run the same versions (docs/dependencies.md, "Locks and audit").
COPY requirements/lock.txt ./requirements/
RUN python -m venv /venv \
    && /venv/bin/pip install --require-hashes --no-deps -r requirements/lock.txt
# Then the portal's wheel, built from every package pyproject.toml declares
# (tests/system/test_image_wheel.py builds it from exactly these lines and imports them all).
COPY pyproject.toml README.md ./
COPY portal ./portal
COPY services ./services
COPY healthchecks ./healthchecks
COPY checklists ./checklists
COPY manifest ./manifest
COPY pages ./pages
COPY automation ./automation
COPY portalctl ./portalctl
RUN /venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /venv/bin/pip install --no-deps /wheels/service_portal-*.whl

FROM python:3.12-slim
ENV PATH=/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORTAL_VAR_DIR=/tmp/portal \
    STATIC_ROOT=/app/staticfiles
RUN useradd --system --uid 10001 --home-dir /app portal
WORKDIR /app
COPY --from=build /venv /venv
# What the processes run from: manage.py, the packages (the same files the wheel holds; the
# settings find templates/ and static/ beside them) -- owned by root and not writable by the
# runtime user. No tests or benchmarks (.dockerignore, and not copied).
COPY manage.py ./
COPY portal ./portal
COPY services ./services
COPY healthchecks ./healthchecks
COPY checklists ./checklists
COPY manifest ./manifest
COPY pages ./pages
COPY automation ./automation
COPY portalctl ./portalctl
COPY templates ./templates
COPY static ./static
# collectstatic needs settings but no database; the key is a build-time throwaway.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/', timeout=2).status != 200)"]
# gunicorn's settings (bind, workers, request limits above the portal's) live in one file that
# compose and the Kubernetes manifests name too.
CMD ["gunicorn", "-c", "portal/gunicorn.conf.py"]
