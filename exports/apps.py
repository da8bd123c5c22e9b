from django.apps import AppConfig


class ExportsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "exports"

    def ready(self) -> None:
        from jobs.public import openapi_register_paths

        from .openapi import PATHS, SCHEMAS

        openapi_register_paths(paths=PATHS, schemas=SCHEMAS)
