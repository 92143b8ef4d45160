"""A minimal single-settings Django project."""

SECRET_KEY = "example-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "shop.urls"
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
MIDDLEWARE = [
    # First, so every view and every span under the request carries the session.
    "bizops_otel.span.django_middleware.BusinessContextMiddleware",
]
# The cookie that names a visitor's session (Django's own by default).
BIZOPS_OTEL_SESSION_COOKIE = "sessionid"
