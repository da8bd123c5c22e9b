from django.contrib import admin
from django.urls import include, path

from jobs.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/", include("jobs.urls")),
    path("api/", include("sync.urls")),
]
