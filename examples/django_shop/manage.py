"""A Django shop under opentelemetry-instrument: the entry point installs bizops-otel (the
views only record orders through its context API).

    pip install 'bizops-otel' django opentelemetry-distro opentelemetry-instrumentation-django
    cd examples/django_shop
    BIZOPS_OTEL_PROMETHEUS_PORT=9464 BIZOPS_OTEL_PAGE_GROUPS='/product/*=product' \\
        opentelemetry-instrument python manage.py runserver --noreload 127.0.0.1:8000

Prometheus scrapes http://127.0.0.1:9464/metrics. The session middleware in
shop/settings.py puts Django's session cookie into the business context.
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
