# syntax=docker/dockerfile:1
# One image for web, worker and beat; docker-compose.yml picks the command.
FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY portal ./portal
COPY services ./services
COPY healthchecks ./healthchecks
RUN python -m venv /venv && /venv/bin/pip install .

FROM python:3.12-slim
ENV PATH=/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORTAL_VAR_DIR=/tmp/portal \
    STATIC_ROOT=/app/staticfiles
RUN useradd --system --uid 10001 --home-dir /app portal
WORKDIR /app
COPY --from=build /venv /venv
COPY --chown=portal:portal . .
# collectstatic needs settings but no database; the key is a build-time throwaway.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/', timeout=2).status != 200)"]
# gunicorn's settings (bind, workers, request limits above the portal's) live in one file that
# compose and the Kubernetes manifests name too.
CMD ["gunicorn", "-c", "portal/gunicorn.conf.py"]
