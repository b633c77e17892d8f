"""App configuration for the configuration pages: change history and YAML download and upload."""

from django.apps import AppConfig


class ConsoleConfigConfig(AppConfig):
    name = "console.config"
    # The default label would be "config", a name too general to keep unique among apps.
    label = "console_config"
    verbose_name = "Configuration history"

    def ready(self):
        from console.config import history

        history.connect_signals()
