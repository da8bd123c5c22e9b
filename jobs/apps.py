from django.apps import AppConfig


class JobsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        # Job types are declared in each app's tasks.py; web processes need the registry
        # too (enqueue validation, API schemas), not only workers.
        from django.utils.module_loading import autodiscover_modules

        autodiscover_modules("tasks", "schedules")

        from jobs.foundation import dbresilience

        dbresilience.install()
