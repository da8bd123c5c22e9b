from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import TemplateView

from exports.urls import api_urlpatterns as exports_api_urlpatterns
from jobs.api.metrics_views import metrics_view
from jobs.api.views import api_not_found
from jobs.ops.health import healthz

urlpatterns = [
    # A newcomer's first page: links to the exports page, the API docs, the admin and the overview.
    path("", TemplateView.as_view(template_name="home/landing.html"), name="home"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/", include("jobs.urls")),
    path("api/", include("sync.urls")),
    path("api/", include(exports_api_urlpatterns)),
    path("exports/", include("exports.urls")),
    # Last: every other path under /api/ (a typo, a trailing slash, an id in other digits) is the API's JSON
    # 404 in every mode. handler404 is not enough: with DEBUG on, Django answers its HTML page listing the URLs.
    re_path(r"^api/", api_not_found, name="api-not-found"),
]

handler404 = "jobs.api.errors_http.not_found"
handler500 = "jobs.api.errors_http.server_error"
