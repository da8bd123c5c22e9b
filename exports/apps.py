from django.apps import AppConfig


class ExportsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "exports"

    def ready(self) -> None:
        from jobs.public import openapi_path_add, openapi_register_paths

        from .openapi import PATHS, SCHEMAS, collection_path_item

        openapi_register_paths(paths=PATHS, schemas=SCHEMAS)
        openapi_path_add("/exports", collection_path_item)  # its request body follows EXPORTS_SOURCES
