from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The kernel every app uses: errors, middleware, logs, metrics, Redis helpers."""

    name = "core"
    verbose_name = "Kernel"
