from django.apps import AppConfig


class SyncConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "sync"

    def ready(self) -> None:
        from jobs.public import openapi_path_add

        from .views import supplier_webhook_openapi

        openapi_path_add("/webhooks/supplier", supplier_webhook_openapi)
