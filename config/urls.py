from django.contrib import admin
from django.urls import include, path

from exports.urls import api_urlpatterns as exports_api_urlpatterns
from jobs.health import healthz
from jobs.metrics_views import metrics_view

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/", include("jobs.urls")),
    path("api/", include("sync.urls")),
    path("api/", include(exports_api_urlpatterns)),
    path("exports/", include("exports.urls")),
]

handler404 = "jobs.errors_http.not_found"
handler500 = "jobs.errors_http.server_error"
