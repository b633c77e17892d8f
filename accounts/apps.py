"""App configuration for users, roles, API permissions and tokens."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def setup_signals(self):
        from routing import version

        for model_name in ("Role", "ApiPermission"):
            version.watch_model(self.get_model(model_name))
        version.watch_m2m(self.get_model("Role").permissions.through)

    def ready(self):
        from accounts import signals  # noqa: F401 - connects the login receivers

        self.setup_signals()
