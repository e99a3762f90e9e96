"""Settings for the service-operations portal, read from the environment.

Every variable read here is listed, with its default, in README.md ("Settings") and in
.env.example. Defaults are the safe production ones; ``DEBUG=true`` switches to local-development
defaults (a generated-looking but fixed secret key, plain HTTP, no HSTS).
"""

import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from dotenv import load_dotenv

from portal.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_map,
    env_networks,
    env_rate,
    env_secret,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
# A local .env fills in what the environment does not set: `make run` writes one (DEBUG, a
# generated key, the database and broker it runs on), so commands typed in another shell see
# the same portal. The environment always wins; PORTAL_ENV_FILE="" reads none (the tests).
ENV_FILE = os.environ.get("PORTAL_ENV_FILE", str(BASE_DIR / ".env"))
if ENV_FILE:
    load_dotenv(ENV_FILE, override=False)
# Local state of the embedded mode: SQLite file, filesystem broker, beat schedule.
VAR_DIR = Path(env_str("PORTAL_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)

# --- Core -------------------------------------------------------------------------------------

SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is off")
    SECRET_KEY = "dev-only-insecure-key-8f3b2c1d9e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "ninja",  # serves the API docs' assets locally instead of from a CDN
    # In layers: the core, the registry on it, health on both, and the parts that compose
    # them on top (import-linter holds them to it: pyproject.toml).
    "portal",
    "services",
    "healthchecks",
    "checklists",
    "manifest",
    "pages",
    "automation",
]

MIDDLEWARE = [
    # First, so that every response (redirects and errors included) carries a request id
    # and every request gets one access-log line.
    "portal.middleware.RequestContextMiddleware",
    # Before anything that may read the database (sessions, authentication, the views): a
    # request waits DB_READ_TIMEOUT at most for each answer from PostgreSQL, and waits once.
    "portal.database.DatabaseTimeoutMiddleware",
    "portal.middleware.BodySizeLimitMiddleware",
    "portal.middleware.UnstorableUrlTextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "portal.middleware.CommonMiddleware",  # Django's, a write missing its slash -> 308
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A browser that signs in gets its device cookie (the login throttle's pairs).
    "portal.middleware.LoginDeviceMiddleware",
    # A session past SESSION_IDLE_SECONDS unused, or SESSION_MAX_SECONDS old, is ended here,
    # before any view reads who is signed in (portal.sessions).
    "portal.sessions.SessionTimeoutMiddleware",
    # After authentication: a logged-in person has a budget of their own.
    "portal.middleware.RateLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, so it sees the exceptions of the views themselves.
    "portal.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------

if not env_str("DATABASE_URL"):
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # home of the embedded mode's SQLite file
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'portal.sqlite3'}",
        # Connections are re-checked before use, so web and workers survive a PostgreSQL
        # restart without being restarted themselves.
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
# PostgreSQL: each process holds at most DB_POOL_SIZE connections, whatever serves it (a
# threaded runserver kept one per request thread and ran the server out of connections);
# a request waits up to DB_POOL_TIMEOUT seconds for one -- all busy, or the server not
# answering -- then gets a 503.
# Connecting gives up after DB_CONNECT_TIMEOUT seconds and a statement after
# DB_STATEMENT_TIMEOUT on the server; a server that says nothing at all (a black-holed
# network, a frozen host) is left after DB_READ_TIMEOUT in a request and after both timeouts
# elsewhere (portal.database), so it costs a request seconds and a 503, not the worker.
# (`migrate` lifts the statement timeout and that bound: portal.apps.)
DB_POOL_SIZE = env_int("DB_POOL_SIZE", 4, minimum=1)
DB_POOL_TIMEOUT = env_float("DB_POOL_TIMEOUT", 3.0)
DB_CONNECT_TIMEOUT = env_int("DB_CONNECT_TIMEOUT", 3, minimum=1)
DB_STATEMENT_TIMEOUT = env_float("DB_STATEMENT_TIMEOUT", 30.0)
DB_READ_TIMEOUT = env_float("DB_READ_TIMEOUT", 4.0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    from portal import database

    # Django's PostgreSQL backend, whose requests stop asking after a first failure.
    DATABASES["default"]["ENGINE"] = "portal.database"
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections instead
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "pool": {
                "min_size": 1,
                "max_size": DB_POOL_SIZE,
                "timeout": DB_POOL_TIMEOUT,
                "max_idle": 60,  # connections above min_size close after a minute unused
                "connection_class": database.BoundedConnection,
                "check": database.check_connection,  # one round trip at checkout, 1 s at most
                # A failed (re)connection is retried after 1 s and 2 s, then given up, so the
                # next request tries at once: the pool's own backoff kept doubling through an
                # outage and came back to a restored database up to 32 s late.
                "reconnect_timeout": DB_POOL_TIMEOUT,
            },
            "connect_timeout": DB_CONNECT_TIMEOUT,
            "options": f"-c statement_timeout={round(DB_STATEMENT_TIMEOUT * 1000)}",
            # A server that vanished without closing its connections is noticed in about a
            # minute instead of the system's two hours.
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded mode runs web, worker and beat on one SQLite file: WAL lets readers and the
    # one writer proceed together, and the timeout makes a busy writer wait instead of fail.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis and cache --------------------------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "portal"),
            # A Redis that hangs costs a request a second, not the worker's timeout.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery -----------------------------------------------------------------------------------
# Read by portal/celery.py through config_from_object(namespace="CELERY").

# A probe batch runs at most the dispatcher's lookahead plus the longest check timeout (the
# API allows 60 s) plus its recording; its task is stopped past that.
HEALTH_DISPATCH_LOOKAHEAD = env_float("HEALTH_DISPATCH_LOOKAHEAD", 2.0)
HEALTH_CHECK_TIMEOUT_MAX = 60
HEALTH_BATCH_SECONDS_MAX = round(HEALTH_DISPATCH_LOOKAHEAD + HEALTH_CHECK_TIMEOUT_MAX + 15)
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    # A message a vanished worker held (the whole machine gone, or the worker's main process
    # killed; a killed pool process is requeued at once) is handed out again this long after
    # it was delivered, checked every 5 s. Just longer than a batch can run, so a live batch
    # is never handed out twice, and a dead worker's checks wait about a minute and a half
    # rather than ten (slots missed meanwhile are recorded as missed: healthchecks.engine.batches).
    # Only probe batches and the dispatcher acknowledge late; housekeeping tasks do not.
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "visibility_timeout": env_int(
            "CELERY_VISIBILITY_TIMEOUT", HEALTH_BATCH_SECONDS_MAX + 15, minimum=5
        ),
        "unacked_restore_interval": 5,
        "unacked_restore_throttle": 1,
    }
else:
    # Embedded broker: kombu's filesystem transport, so `make run` needs nothing installed,
    # with every message file written whole before any consumer can see it (portal.broker:
    # kombu's own lets a worker read a half-written file and die, kombu issue 1551).
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT = "portal.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(VAR_DIR / "broker"),
        "data_folder_out": str(VAR_DIR / "broker"),
        "control_folder": str(VAR_DIR / "broker-control"),
        "store_processed": False,
        # An idle worker looks for messages this often (kombu's default is every second). It
        # also waits this long whenever its prefetch is full, so at one second a worker of
        # two processes took two messages a second: the demo's dispatcher fell ten seconds
        # behind and its messages expired. At 0.1 s it keeps up with 15 checks a second.
        "polling_interval": 0.1,
    }
    CELERY_RESULT_BACKEND = f"file://{VAR_DIR / 'results'}"
CELERY_TASK_SERIALIZER = "json"  # tasks take ids and plain values, never model instances
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
# Acknowledge after the task ran, so a worker killed mid-task has it redelivered; every task
# is written to be idempotent, which makes running it twice harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One message at a time per worker process: a slow task cannot sit on a queue of others.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 60, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 90, minimum=1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # keep our JSON logging
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Probe batches go to their own queue, so a slow batch never holds up the dispatcher or
# housekeeping; the dispatcher has its own queue too (run it on a worker of its own).
CELERY_TASK_ROUTES = {
    "healthchecks.tasks.probe_batch": {"queue": "probes"},
    "healthchecks.tasks.dispatch_due_checks": {"queue": "dispatch"},
    # Keeps the claim's table small: runs where the claims run.
    "healthchecks.tasks.vacuum_hot_tables": {"queue": "dispatch"},
    # Receivers may hang for their timeout: never on a queue the health engine needs.
    "automation.tasks.*": {"queue": "automation"},
}
# Beat holds only fixed housekeeping; per-check schedules live in the database.
BEAT_HEARTBEAT_SECONDS = env_int("BEAT_HEARTBEAT_SECONDS", 30, minimum=1)
# With Redis, run two beats or more: the one holding a lease in Redis sends, the others stand
# by and take over within BEAT_LEASE_SECONDS (+ 0.5 s) of its loss (portal.beat). Embedded
# mode keeps Celery's own scheduler: one beat.
BEAT_LEASE_SECONDS = env_float("BEAT_LEASE_SECONDS", 5.0)
if REDIS_URL:
    CELERY_BEAT_SCHEDULER = "portal.beat:LeasedScheduler"
HEALTH_DISPATCH_SECONDS = env_float("HEALTH_DISPATCH_SECONDS", 1.0)
CELERY_BEAT_SCHEDULE = {
    "beat-heartbeat": {
        "task": "portal.tasks.record_heartbeat",
        "schedule": BEAT_HEARTBEAT_SECONDS,
        "args": ("beat",),
    },
    "dispatch-due-checks": {
        "task": "healthchecks.tasks.dispatch_due_checks",
        "schedule": HEALTH_DISPATCH_SECONDS,
    },
    "roll-up-history": {"task": "healthchecks.tasks.roll_up_history", "schedule": 60.0},
    "refresh-predictions": {"task": "healthchecks.tasks.refresh_predictions", "schedule": 60.0},
    # Maintenance windows open and close with time: the services' status follows.
    "apply-maintenance-windows": {
        "task": "healthchecks.tasks.apply_maintenance_windows",
        "schedule": 15.0,
    },
    "prune-history": {"task": "healthchecks.tasks.prune_history", "schedule": 3600.0},
    "adapt-rate-limits": {"task": "healthchecks.tasks.adapt_rate_limits", "schedule": 15.0},
    "open-checklist-runs": {"task": "checklists.tasks.open_current_runs", "schedule": 600.0},
}
# The checks' schedule and state tables are rewritten on every claim and result: vacuumed this
# often (seconds; 0: left to the server's autovacuum). See healthchecks.engine.scheduling.
HEALTH_VACUUM_SECONDS = env_float("HEALTH_VACUUM_SECONDS", 60.0)
if HEALTH_VACUUM_SECONDS > 0:
    CELERY_BEAT_SCHEDULE["vacuum-hot-tables"] = {
        "task": "healthchecks.tasks.vacuum_hot_tables",
        "schedule": HEALTH_VACUUM_SECONDS,
    }

# --- Security ---------------------------------------------------------------------------------

# The adaptive rate limiter (portal.ratelimit): per route class, "<per minute>/<burst>" per
# client (token, else user, else address). Probes and pings are generous: an orchestrator's
# probes must never be limited into a restart.
RATE_LIMITS_ENABLED = env_bool("RATE_LIMITS_ENABLED", True)
RATE_LIMITS = {
    "api_read": env_rate("RATE_LIMIT_API_READ", "100/200"),
    "api_write": env_rate("RATE_LIMIT_API_WRITE", "100/200"),
    "login": env_rate("RATE_LIMIT_LOGIN", "10/20"),
    "heartbeat": env_rate("RATE_LIMIT_HEARTBEAT", "120/240"),
    "health": env_rate("RATE_LIMIT_HEALTH", "6000/12000"),
    "pages": env_rate("RATE_LIMIT_PAGES", "300/600"),
}
# Under stress the lowest classes (pages, API reads) tighten down to this share of their rate.
RATE_LIMIT_FLOOR = env_float("RATE_LIMIT_FLOOR", 0.25)
# Stress: more than this share of the last minute's answers were genuine faults (an unhandled
# error, the database unavailable; never an answer given on purpose, such as the health gate's
# 503) or slower than RATE_LIMIT_SLOW_SECONDS, or the portal's own `backend` is not healthy.
RATE_LIMIT_STRESS_SHARE = env_float("RATE_LIMIT_STRESS_SHARE", 0.05)
RATE_LIMIT_SLOW_SECONDS = env_float("RATE_LIMIT_SLOW_SECONDS", 1.0)
# Proxies whose X-Forwarded-For is believed: addresses or networks (CIDR: an ingress
# controller's pods move within the pod network); none: the peer is the client.
TRUSTED_PROXIES = env_networks("TRUSTED_PROXIES")
# Login throttle (portal.security, docs/operating.md): this many failures within the window
# for one user name from one address (or one browser it signed in from) lock that pair out
# for LOGIN_LOCK_SECONDS; a name failing from this many addresses, or an address failing this
# many times (_ADDRESS), is held to one failure per pair meanwhile -- never locked whole.
AUTHENTICATION_BACKENDS = ["portal.backends.ThrottledModelBackend"]
LOGIN_MAX_FAILURES_USER = env_int("LOGIN_MAX_FAILURES_USER", 5, minimum=1)
LOGIN_MAX_FAILURES_ADDRESS = env_int("LOGIN_MAX_FAILURES_ADDRESS", 20, minimum=1)
LOGIN_FAILURE_WINDOW = env_int("LOGIN_FAILURE_WINDOW", 900, minimum=1)
LOGIN_LOCK_SECONDS = env_int("LOGIN_LOCK_SECONDS", 900, minimum=1)

SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Probes and scrapers speak plain HTTP inside the cluster; never redirect them.
SECURE_REDIRECT_EXEMPT = [r"^health/", r"^health$", r"^metrics$"]
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
CSRF_FAILURE_VIEW = "portal.views.csrf_failure"
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.SELF],
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "pages:overview"
LOGOUT_REDIRECT_URL = "login"

# --- Sign-in through the identity provider, and sessions --------------------------------------
# OpenID Connect (portal.oidc, portal.directory, docs/operating.md "Signing in through your
# identity provider"): the authorization code flow with PKCE, the provider found through
# OIDC_ISSUER's discovery document. Unset: nothing changes, the login form alone.
OIDC_ISSUER = env_str("OIDC_ISSUER").strip()
OIDC_CLIENT_ID = env_str("OIDC_CLIENT_ID").strip()
OIDC_CLIENT_SECRET = env_secret("OIDC_CLIENT_SECRET").strip()
OIDC_SCOPES = env_list("OIDC_SCOPES", ["openid", "profile", "email"])
# The claim a new account's user name comes from (then ``sub``, if it is missing); the
# account is found again by the issuer and ``sub`` alone, whatever its name.
OIDC_USERNAME_CLAIM = env_str("OIDC_USERNAME_CLAIM", "preferred_username")
# Roles and teams from the groups claim, at every sign-in (portal.directory): group=role,
# group=team, and groups named <OIDC_TEAM_PREFIX><team>. A person in no group that
# OIDC_ROLE_MAP maps is refused: no viewer by default.
OIDC_GROUPS_CLAIM = env_str("OIDC_GROUPS_CLAIM", "groups")
OIDC_ROLE_MAP = env_map("OIDC_ROLE_MAP", choices=("viewer", "operator", "admin"))
OIDC_TEAM_MAP = env_map("OIDC_TEAM_MAP")
OIDC_TEAM_PREFIX = env_str("OIDC_TEAM_PREFIX")
# Each call to the provider (discovery, keys, the token endpoint) gives up after this long.
OIDC_TIMEOUT = env_float("OIDC_TIMEOUT", 5.0)
# The username/password form (and the admin's). false: sign-in through the provider only.
LOCAL_LOGIN = env_bool("LOCAL_LOGIN", True)
if OIDC_ISSUER:
    if not OIDC_CLIENT_ID:
        raise ImproperlyConfigured("OIDC_CLIENT_ID must be set with OIDC_ISSUER")
    if "openid" not in OIDC_SCOPES:
        raise ImproperlyConfigured(f"OIDC_SCOPES must include openid, not {OIDC_SCOPES}")
    _issuer = urlsplit(OIDC_ISSUER)
    if _issuer.scheme != "https" and not (
        _issuer.scheme == "http"
        and (DEBUG or _issuer.hostname in ("127.0.0.1", "localhost", "::1"))
    ):
        raise ImproperlyConfigured(
            f"OIDC_ISSUER must be an https:// URL (http:// only on loopback or with DEBUG), "
            f"not {OIDC_ISSUER!r}: its keys are fetched from there"
        )
elif not LOCAL_LOGIN:
    raise ImproperlyConfigured("LOCAL_LOGIN=false needs OIDC_ISSUER: nobody could sign in")
# A signed-in session ends after SESSION_IDLE_SECONDS without a request, and
# SESSION_MAX_SECONDS after its sign-in whatever happens, checked on the server at each
# request (portal.sessions); the browser's cookie lasts no longer.
SESSION_IDLE_SECONDS = env_int("SESSION_IDLE_SECONDS", 28_800, minimum=60)
SESSION_MAX_SECONDS = env_int("SESSION_MAX_SECONDS", 1_209_600, minimum=60)
SESSION_COOKIE_AGE = SESSION_MAX_SECONDS

# --- Internationalisation and static files ---------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Development serves static files from the finders; production needs `collectstatic`.
WHITENOISE_USE_FINDERS = DEBUG

# --- Logging ----------------------------------------------------------------------------------

LOG_LEVEL = env_choice("LOG_LEVEL", ("debug", "info", "warning", "error"), "info").upper()
LOG_FORMAT = env_choice("LOG_FORMAT", ("json", "console"), "json")
LOGGING_CONFIG = None  # portal.logging configures stdlib logging and structlog together
from portal.logging import configure_logging  # noqa: E402

configure_logging(level=LOG_LEVEL, fmt=LOG_FORMAT)

# --- API --------------------------------------------------------------------------------------

# Largest request body the API accepts; larger ones get 413 before anything is parsed.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 1_048_576, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
# One header, and all of them together; the URI (path and query). gunicorn's limits sit above
# these (portal/gunicorn.conf.py), so the portal answers them in its error shape (431, 414).
API_MAX_HEADER_BYTES = env_int("API_MAX_HEADER_BYTES", 8192, minimum=1024)
API_MAX_HEADERS_TOTAL_BYTES = env_int("API_MAX_HEADERS_TOTAL_BYTES", 32768, minimum=4096)
# RFC 9110 asks for at least 8,000; gunicorn reads request lines of 8,190 bytes at most.
API_MAX_URL_BYTES = env_int("API_MAX_URL_BYTES", 8000, minimum=1024)
# Deepest JSON nesting the API accepts (a guard against pathological documents).
API_MAX_JSON_DEPTH = env_int("API_MAX_JSON_DEPTH", 32, minimum=2)
API_MAX_JSON_KEYS = env_int("API_MAX_JSON_KEYS", 100_000, minimum=10)
API_PAGE_SIZE = env_int("API_PAGE_SIZE", 50, minimum=1)
API_PAGE_SIZE_MAX = env_int("API_PAGE_SIZE_MAX", 500, minimum=1)
# last_used_at is written at most this often per token, to keep reads free of writes.
API_TOKEN_TOUCH_SECONDS = env_int("API_TOKEN_TOUCH_SECONDS", 60, minimum=0)

# --- Portal features (used by the configuration and health-check capabilities) --------------

SERVICE_CONFIG_VALIDATION_LEVEL = env_choice(
    "SERVICE_CONFIG_VALIDATION_LEVEL", ("strict", "lenient", "off"), "strict"
)
# Fernet keys for secret configuration values, comma-separated: the first encrypts, all
# decrypt (rotation: put a new key first, run `manage.py rotate_config_secrets`, drop the old
# one). Unset: one key derived from SECRET_KEY.
CONFIG_ENCRYPTION_KEYS = env_list("CONFIG_ENCRYPTION_KEYS")
# Largest configuration document (values or schema) accepted, in bytes of JSON.
CONFIG_MAX_BYTES = env_int("CONFIG_MAX_BYTES", 262_144, minimum=1024)
# Longest one validation of a configuration against its schema may run, in seconds; past it
# the request is refused (422 schema_too_costly) rather than left to stall a worker.
CONFIG_VALIDATION_SECONDS = env_float("CONFIG_VALIDATION_SECONDS", 2.0)
HEALTH_CHECK_INTERVAL = env_int("HEALTH_CHECK_INTERVAL", 30, minimum=1)
# Where checks may point (a health checker fetches URLs users give it: an SSRF engine by
# design). Comma-separated CIDRs, ports and host patterns; empty "allowed" means any. Always
# refused whatever these say: link-local and cloud metadata addresses (169.254.0.0/16,
# fd00:ec2::254), unspecified and multicast addresses.
HEALTH_ALLOWED_NETWORKS = env_list("HEALTH_ALLOWED_NETWORKS")
HEALTH_DENIED_NETWORKS = env_list("HEALTH_DENIED_NETWORKS")
HEALTH_ALLOWED_PORTS = env_list("HEALTH_ALLOWED_PORTS")
HEALTH_DENIED_PORTS = env_list("HEALTH_DENIED_PORTS")
HEALTH_ALLOWED_HOSTS = env_list("HEALTH_ALLOWED_HOSTS")
HEALTH_DENIED_HOSTS = env_list("HEALTH_DENIED_HOSTS")
# The scheduler: beat runs the dispatcher every HEALTH_DISPATCH_SECONDS (set with the Celery
# block above); it claims checks due within HEALTH_DISPATCH_LOOKAHEAD seconds (workers start
# each probe at its due time) and sends them in batches of HEALTH_BATCH_SIZE. A worker runs at
# most HEALTH_PROBE_CONCURRENCY probes at once and records every HEALTH_FLUSH_SECONDS or
# HEALTH_FLUSH_SIZE results.
HEALTH_BATCH_SIZE = env_int("HEALTH_BATCH_SIZE", 500, minimum=1)
HEALTH_PROBE_CONCURRENCY = env_int("HEALTH_PROBE_CONCURRENCY", 500, minimum=1)
HEALTH_FLUSH_SECONDS = env_float("HEALTH_FLUSH_SECONDS", 0.25)
HEALTH_FLUSH_SIZE = env_int("HEALTH_FLUSH_SIZE", 500, minimum=1)
# A probe that times out, or answers slower than its threshold, while the checker's own event
# loop fell this far behind (ms) is not believed: recorded unknown, "checker overloaded"
# (healthchecks.engine.trust). A probe that starts within HEALTH_ON_TIME_MS of its due time is on
# time (the figure the dispatcher's back-pressure and /metrics watch).
HEALTH_CHECKER_LAG_MS = env_int("HEALTH_CHECKER_LAG_MS", 250, minimum=10)
HEALTH_ON_TIME_MS = env_int("HEALTH_ON_TIME_MS", 250, minimum=10)
# A worker that consumes the probes queue lowers its CPU priority by this much (nice), so that
# probing at full rate does not slow the web processes sharing the machine; 0 leaves it alone.
HEALTH_PROBE_WORKER_NICENESS = env_int("HEALTH_PROBE_WORKER_NICENESS", 10, minimum=0)
# Deployment verification (healthchecks.engine.verification): while a reported deployment
# waits for its verdict, its gating checks run at least this often (seconds); a deployment
# whose checks have no usable result this long after its bake ended is failed.
DEPLOY_VERIFY_INTERVAL_SECONDS = env_float("DEPLOY_VERIFY_INTERVAL_SECONDS", 5.0)
DEPLOY_VERIFY_TIMEOUT_SECONDS = env_int("DEPLOY_VERIFY_TIMEOUT_SECONDS", 120, minimum=1)
# Demo targets under /demo/ for `make run` (see healthchecks/watch/demo.py); never in production.
DEMO_ENDPOINTS = env_bool("DEMO_ENDPOINTS", DEBUG)
DEMO_BASE_URL = env_str("DEMO_BASE_URL", "http://127.0.0.1:8000")
# History: raw results, hourly and daily rollups are kept this many days.
HEALTH_RAW_RETENTION_DAYS = env_int("HEALTH_RAW_RETENTION_DAYS", 7, minimum=1)
HEALTH_HOURLY_RETENTION_DAYS = env_int("HEALTH_HOURLY_RETENTION_DAYS", 35, minimum=1)
HEALTH_DAILY_RETENTION_DAYS = env_int("HEALTH_DAILY_RETENTION_DAYS", 400, minimum=1)
# Python checks may only name callables under these module prefixes.
HEALTH_CALLABLE_PREFIXES = env_list("HEALTH_CALLABLE_PREFIXES", ["healthchecks.watch.builtin."])

# --- Automation (alerts and notifications: the automation app) --------------------------------

# false: alerts are still opened and resolved, but nothing is sent (each delivery is recorded
# as skipped, with the reason).
ENABLE_HEALTH_AUTOMATION = env_bool("ENABLE_HEALTH_AUTOMATION", True)
# Where people reach the portal: the links in notifications.
PORTAL_BASE_URL = env_str("PORTAL_BASE_URL", "http://127.0.0.1:8000")
# A DOWN or DEGRADED notification carries a link that acknowledges its alert (signed, for
# that alert only): it opens a confirm page this many hours after the message was made.
AUTOMATION_ACK_LINK_HOURS = env_int("AUTOMATION_ACK_LINK_HOURS", 24, minimum=1)
# /status/: open to anyone (a shareable status page) or to logged-in people only.
STATUS_PAGE_PUBLIC = env_bool("STATUS_PAGE_PUBLIC", False)
# Beat runs the outbox reader this often (seconds).
AUTOMATION_SECONDS = env_float("AUTOMATION_SECONDS", 2.0)
CELERY_BEAT_SCHEDULE["process-status-changes"] = {
    "task": "automation.tasks.process_status_changes",
    "schedule": AUTOMATION_SECONDS,
}
# An alert is announced this long after it opens, so that the services a root cause takes
# down with it (their own checks may fail first) are folded into its one notification.
AUTOMATION_GROUP_SECONDS = env_float("AUTOMATION_GROUP_SECONDS", 30.0)
# Each call to a receiver: at most this long (seconds); at most this many receivers at once
# per worker process; failed calls retried after AUTOMATION_RETRY_SECONDS, doubling each time,
# until AUTOMATION_MAX_ATTEMPTS, then recorded as given up.
AUTOMATION_SEND_TIMEOUT = env_float("AUTOMATION_SEND_TIMEOUT", 10.0)
AUTOMATION_SEND_CONCURRENCY = env_int("AUTOMATION_SEND_CONCURRENCY", 8, minimum=1)
AUTOMATION_RETRY_SECONDS = env_float("AUTOMATION_RETRY_SECONDS", 30.0)
AUTOMATION_MAX_ATTEMPTS = env_int("AUTOMATION_MAX_ATTEMPTS", 5, minimum=1)
