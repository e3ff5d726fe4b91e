"""The one settings module.

Each value comes from the environment, else from the env file
(``CLOSEDLOOP_ENV_FILE``, default ``./closedloop.env``), else from the default below.
``docs/configuration.md`` lists every variable; ``closedloop config`` prints them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from closedloop.config import ConfigError, Env

PACKAGE_DIR = Path(__file__).resolve().parent
TESTING = "pytest" in sys.modules or (len(sys.argv) > 1 and sys.argv[1] == "test")
env = Env()

try:
    DEBUG = env.bool("DEBUG", False, "Show detailed error pages. Never in production.")
    VAR_DIR = Path(
        env.str("VAR_DIR", "var", "Folder for the SQLite database, uploads, logs and screenshots.")
    ).resolve()
    SECRET_KEY = env.str("SECRET_KEY", "", "Signs sessions and tokens. Required when DEBUG=False.")
    USE_SSL = env.bool("USE_SSL", False, "Served over HTTPS: secure cookies, HSTS, redirect.")
    ALLOWED_HOSTS = env.list(
        "ALLOWED_HOSTS", "127.0.0.1,localhost", "Comma-separated host names served."
    )
    BASE_URL = env.str(
        "BASE_URL", "http://127.0.0.1:8000", "Public address, used in links inside emails."
    ).rstrip("/")
    DATABASE_URL = env.str(
        "DATABASE_URL",
        "",
        "sqlite:///path/to/file.sqlite3 or postgres://user:pw@host:5432/name. "
        "Default: SQLite file under VAR_DIR.",
    )
    REDIS_URL = env.str(
        "REDIS_URL", "", "Redis for the Celery broker and the cache. Empty: embedded SQLite broker."
    )
    CELERY_BROKER_URL = env.str(
        "CELERY_BROKER_URL", "", "Overrides the broker chosen from REDIS_URL."
    )
    CELERY_TASK_ALWAYS_EAGER = env.bool(
        "CELERY_TASK_ALWAYS_EAGER",
        TESTING,
        "Run tasks inside the calling process (default on only under the test runner).",
    )
    TIME_ZONE = env.str("TIME_ZONE", "UTC", "Default time zone of new accounts and of the server.")
    LANGUAGE_CODE = env.choice(
        "LANGUAGE_CODE", "en", ("en", "fr", "ar"), "Default interface language."
    )
    APP_TITLE = env.str("APP_TITLE", "closedloop", "Name shown in the navigation bar and emails.")
    LOGO_PATH = env.str("LOGO_PATH", "", "URL or static path of a logo shown beside the title.")
    THEME_PRIMARY_COLOR = env.str(
        "THEME_PRIMARY_COLOR", "#0f6e6e", "Primary colour of buttons and the navigation bar."
    )
    MAP_TILE_URL = env.str(
        "MAP_TILE_URL",
        "",
        "Tile URL template for maps, e.g. https://tile.example.org/{z}/{x}/{y}.png. "
        "Empty: maps draw on a blank background.",
    )
    MAP_TILE_ATTRIBUTION = env.str("MAP_TILE_ATTRIBUTION", "", "Attribution text for the tiles.")
    EMAIL_HOST = env.str("EMAIL_HOST", "", "SMTP server. Empty: mail is written to VAR_DIR/mail.")
    EMAIL_PORT = env.int("EMAIL_PORT", 25, "SMTP port.")
    EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", "", "SMTP user name.")
    EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", "", "SMTP password.")
    EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", False, "STARTTLS on the SMTP connection.")
    EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", False, "Implicit TLS on the SMTP connection.")
    DEFAULT_FROM_EMAIL = env.str(
        "DEFAULT_FROM_EMAIL", "closedloop <noreply@localhost>", "Sender of system emails."
    )
    EMAIL_BURST = env.int("EMAIL_BURST", 0, "Emails sent before pausing (0: no pause).")
    EMAIL_BURST_PAUSE = env.int("EMAIL_BURST_PAUSE", 0, "Seconds to pause after a burst.")
    LOGIN_THROTTLE_ATTEMPTS = env.int(
        "LOGIN_THROTTLE_ATTEMPTS", 5, "Failed logins per email and address before a pause."
    )
    LOGIN_THROTTLE_SECONDS = env.int(
        "LOGIN_THROTTLE_SECONDS", 300, "How long logins are refused after too many failures."
    )
    DATAOPS_MAX_UPLOAD_SIZE = env.int(
        "DATAOPS_MAX_UPLOAD_SIZE", 209715200, "Largest file accepted for an import, in bytes."
    )
    EMAIL_OVERRIDE_FROM = env.str(
        "EMAIL_OVERRIDE_FROM", "", "Sender of every feedback email (else the user's address)."
    )
    EMAIL_HTML_ONLY = env.bool(
        "EMAIL_HTML_ONLY", True, "Feedback emails as HTML only (False: text and HTML parts)."
    )
    EMAIL_OUTBOX_ONLY = env.bool(
        "EMAIL_OUTBOX_ONLY",
        False,
        "Keep feedback messages in the in-app outbox (and the console) instead of sending them."
        " Always on when EMAIL_HOST is empty.",
    )
    DELIVERY_MAX_ATTEMPTS = env.int(
        "DELIVERY_MAX_ATTEMPTS", 5, "Tries per message before it is marked failed."
    )
    DELIVERY_RETRY_SECONDS = env.int(
        "DELIVERY_RETRY_SECONDS", 60, "First retry delay of a failed message (doubles each time)."
    )
    SMS_TRANSPORT = env.choice(
        "SMS_TRANSPORT",
        "rapidpro",
        ("rapidpro", "http", "email", "none"),
        "How personalized SMS leave: the account's RapidPro connection, an HTTP gateway,"
        " or an SMTP-to-SMS gateway.",
    )
    SMS_HTTP_URL = env.str("SMS_HTTP_URL", "", "HTTP SMS gateway: POST {to, text} here.")
    SMS_HTTP_TOKEN = env.str("SMS_HTTP_TOKEN", "", "Bearer token for SMS_HTTP_URL.")
    SMS_EMAIL_DOMAIN = env.str(
        "SMS_EMAIL_DOMAIN", "", "SMTP-to-SMS gateway: mail goes to <number>@SMS_EMAIL_DOMAIN."
    )
    EXECUTE_ACTION_JSON_TRANSFER = env.bool(
        "EXECUTE_ACTION_JSON_TRANSFER",
        True,
        "POST personalized JSON for real (False: only log what would be sent).",
    )
    CANVAS_INFO_DICT = env.str(
        "CANVAS_INFO_DICT",
        "",
        "Canvas instances as JSON: {name: {domain_port, client_id, client_secret, "
        "authorize_url, access_token_url, conversation_url, aux_params}}.",
    )
    CANVAS_TOKEN_EXPIRY_SLACK = env.int(
        "CANVAS_TOKEN_EXPIRY_SLACK", 600, "Refresh a Canvas token this many seconds early."
    )
    LTI_OAUTH_CREDENTIALS = env.list(
        "LTI_OAUTH_CREDENTIALS", "", "LTI 1.1 consumer key=secret pairs, comma-separated."
    )
    LTI_INSTRUCTOR_GROUP_ROLES = env.list(
        "LTI_INSTRUCTOR_GROUP_ROLES", "Instructor", "LTI roles that make a user an instructor."
    )
    USE_REMOTE_USER = env.bool(
        "USE_REMOTE_USER", False, "Trust REMOTE_USER set by the web server (SAML, Shibboleth)."
    )
    AUTH_LDAP_SERVER_URI = env.str("AUTH_LDAP_SERVER_URI", "", "LDAP server; empty: no LDAP.")
    AUTH_LDAP_BIND_DN = env.str("AUTH_LDAP_BIND_DN", "", "LDAP bind DN for user searches.")
    AUTH_LDAP_BIND_PASSWORD = env.str("AUTH_LDAP_BIND_PASSWORD", "", "LDAP bind password.")
    AUTH_LDAP_USER_SEARCH_BASE = env.str(
        "AUTH_LDAP_USER_SEARCH_BASE", "", "Base DN under which users are searched."
    )
    AUTH_LDAP_USER_ATTR = env.str(
        "AUTH_LDAP_USER_ATTR", "mail", "LDAP attribute matched against the login (an email)."
    )
    AUTH_LDAP_FULL_NAME_ATTR = env.str(
        "AUTH_LDAP_FULL_NAME_ATTR", "cn", "LDAP attribute copied into the user's full name."
    )
    AUTH_LDAP_START_TLS = env.bool(
        "AUTH_LDAP_START_TLS", False, "Upgrade the LDAP connection with StartTLS."
    )
    LTI_CONSUMER_ACCOUNTS = env.list(
        "LTI_CONSUMER_ACCOUNTS",
        "",
        "key=account-slug[|slug...] pairs: the accounts an LTI consumer may make instructors"
        " in (a key not listed may name any account with custom_account).",
    )
    DATAOPS_PLUGIN_DIRECTORY = env.str(
        "DATAOPS_PLUGIN_DIRECTORY", "", "Folder of transformation and model plugins."
    )
    DATAOPS_SQL_TIMEOUT = env.int(
        "DATAOPS_SQL_TIMEOUT", 30, "Seconds an SQL-connection read may take before it is stopped."
    )
    DATAOPS_SQLITE_DIRS = env.list(
        "DATAOPS_SQLITE_DIRS",
        "",
        "Folders SQLite connections may read from (default: VAR_DIR/sqlite-sources).",
    )
    DATAOPS_REMOTE_HOSTS = env.list(
        "DATAOPS_REMOTE_HOSTS",
        "docs.google.com",
        "Hosts remote-URL uploads may fetch from (comma-separated).",
    )
    DATAOPS_PLUGIN_TIMEOUT = env.int(
        "DATAOPS_PLUGIN_TIMEOUT", 300, "Seconds a plugin run may take before it is stopped."
    )
    DISABLED_ACTIONS = env.list(
        "DISABLED_ACTIONS", "", "Action types not offered (e.g. todo_list)."
    )
    FEEDBACK_TABLE_VERSIONS = env.int(
        "FEEDBACK_TABLE_VERSIONS", 5, "Previous table versions kept per workflow for undo."
    )
    POLLS_SYNC_MINUTES = env.int(
        "POLLS_SYNC_MINUTES",
        30,
        "Default interval between two syncs of a RapidPro connection (each can override it).",
    )
    POLLS_BACKOFF_MAX_SECONDS = env.int(
        "POLLS_BACKOFF_MAX_SECONDS",
        86400,
        "Longest wait after repeated sync failures (the wait doubles per failure).",
    )
    POLLS_SYNC_LOCK_SECONDS = env.int(
        "POLLS_SYNC_LOCK_SECONDS",
        3600,
        "How long a running sync holds its connection's lock before another may take it.",
    )
    POLLS_INBOX_DAYS = env.int(
        "POLLS_INBOX_DAYS", 30, "Default window of the inbox sync, in days (an account setting)."
    )
    RAPIDPRO_MAX_RETRIES = env.int(
        "RAPIDPRO_MAX_RETRIES", 5, "Tries per RapidPro request answered 429 (Retry-After)."
    )
    RAPIDPRO_MAX_RETRY_AFTER = env.int(
        "RAPIDPRO_MAX_RETRY_AFTER",
        120,
        "Longest Retry-After honoured inside a job; longer waits end the sync and back off.",
    )
    DEMO_RAPIDPRO_PORT = env.int(
        "DEMO_RAPIDPRO_PORT",
        8001,
        "Port where `closedloop demo` serves the demo's fake RapidPro (on 127.0.0.1).",
    )
    API_MAX_PAGE_SIZE = env.int("API_MAX_PAGE_SIZE", 500, "Largest `limit` an API list accepts.")
    WORKER_HEARTBEAT_SECONDS = env.int(
        "WORKER_HEARTBEAT_SECONDS", 30, "How often a worker records that it is alive."
    )
    LOG_LEVEL = env.choice(
        "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"), "Logging threshold."
    )
except ConfigError as exc:
    raise ImproperlyConfigured(str(exc)) from None


if not SECRET_KEY:
    if not DEBUG and not TESTING:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment or the env file "
            "(closedloop.env), e.g. SECRET_KEY=$(python -c 'import secrets; "
            "print(secrets.token_urlsafe(50))'), or set DEBUG=True for local use."
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production-0123456789abcdef"  # noqa: S105

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "django_celery_beat",
    "ninja",
    "closedloop.core",
    "closedloop.accounts",
    "closedloop.registry",
    "closedloop.people",
    "closedloop.jobs",
    "closedloop.feedback",
    "closedloop.polls",
    "closedloop.api",
    "closedloop.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "closedloop.core.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "closedloop.accounts.middleware.AccountMiddleware",
]

ROOT_URLCONF = "closedloop.urls"
WSGI_APPLICATION = "closedloop.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "closedloop.web.context_processors.shell",
            ],
        },
    }
]

if not DATABASE_URL:
    DATABASE_URL = f"sqlite:///{VAR_DIR / 'closedloop.sqlite3'}"
try:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=0)
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL: {exc}") from None
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
            " PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;"
        ),
    }
    _db.setdefault("TEST", {})
elif _db["ENGINE"] == "django.db.backends.postgresql":
    _db["CONN_MAX_AGE"] = 0 if TESTING else 60
    _db["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["closedloop.accounts.backends.EmailBackend"]
for _name, _pairs in (
    ("LTI_OAUTH_CREDENTIALS", LTI_OAUTH_CREDENTIALS),
    ("LTI_CONSUMER_ACCOUNTS", LTI_CONSUMER_ACCOUNTS),
):
    for _pair in _pairs:
        _key, _sep, _value = _pair.partition("=")
        if not (_sep and _key.strip() and _value.strip()):
            raise ImproperlyConfigured(
                f"{_name}: expected comma-separated key=value pairs, got {_pair!r}"
            )
if USE_REMOTE_USER:
    # the web server (SAML, Shibboleth) sets REMOTE_USER to the signed-in email address
    AUTHENTICATION_BACKENDS.insert(0, "closedloop.accounts.backends.RemoteEmailBackend")
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
        "closedloop.accounts.backends.RemoteEmailMiddleware",
    )
if AUTH_LDAP_SERVER_URI:
    # optional: python-ldap and django-auth-ldap come with `pip install closedloop[ldap]`
    try:
        import ldap
        from django_auth_ldap.config import LDAPSearch
    except ImportError:
        raise ImproperlyConfigured(
            "AUTH_LDAP_SERVER_URI is set but django-auth-ldap is not installed: "
            "pip install 'closedloop[ldap]' (needs libldap2-dev and libsasl2-dev)."
        ) from None
    if not AUTH_LDAP_USER_SEARCH_BASE:
        raise ImproperlyConfigured(
            "AUTH_LDAP_USER_SEARCH_BASE must be set when AUTH_LDAP_SERVER_URI is set."
        )
    AUTH_LDAP_USER_SEARCH = LDAPSearch(
        AUTH_LDAP_USER_SEARCH_BASE, ldap.SCOPE_SUBTREE, f"({AUTH_LDAP_USER_ATTR}=%(user)s)"
    )
    AUTH_LDAP_USER_ATTR_MAP = {"full_name": AUTH_LDAP_FULL_NAME_ATTR}
    AUTH_LDAP_ALWAYS_UPDATE_USER = True
    AUTH_LDAP_CONNECTION_OPTIONS = {ldap.OPT_REFERRALS: 0, ldap.OPT_NETWORK_TIMEOUT: 10}
    AUTHENTICATION_BACKENDS.append("closedloop.accounts.backends.EmailLDAPBackend")
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "web:home"
LOGOUT_REDIRECT_URL = "accounts:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGES = [("en", _("English")), ("fr", _("French")), ("ar", _("Arabic"))]
LANGUAGES_BIDI = ["ar"]
LOCALE_PATHS = [PACKAGE_DIR / "locale"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [PACKAGE_DIR / "web" / "static_vendor"]
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or TESTING
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG or TESTING
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 20 * 1024 * 1024

if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "closedloop_cache",
        }
    }

if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = REDIS_URL or f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# fixed entries; beat copies them into its database schedule at start
CELERY_BEAT_SCHEDULE = {
    "feedback: outbox sweep": {"task": "closedloop.feedback.outbox_sweep", "schedule": 60.0},
    "polls: sync due connections": {"task": "closedloop.polls.sync_due", "schedule": 60.0},
}
CELERY_TIMEZONE = "UTC"

if not EMAIL_HOST:
    EMAIL_OUTBOX_ONLY = True
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(VAR_DIR / "mail")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if USE_SSL:
    SECURE_SSL_REDIRECT = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
CSRF_TRUSTED_ORIGINS = [BASE_URL] if BASE_URL.startswith("http") else []

SCOPES_DISABLED = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
