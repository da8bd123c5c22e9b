from django.urls import path

from jobs.api import views

app_name = "jobs"

# The paths are a contract with frontends (see /api/openapi.json): no trailing slashes.
urlpatterns = [
    path("jobs", views.jobs_collection, name="job-collection"),
    path("jobs/bulk", views.jobs_bulk, name="job-bulk"),  # before jobs/<id>: no job id is "bulk" (new_job_id)
    path("jobs/<str:job_id>", views.job_detail, name="job-detail"),
    path("jobs/<str:job_id>/cancel", views.job_cancel_view, name="job-cancel"),
    path("cron/<str:name>", views.cron_trigger, name="cron-trigger"),
    path("ops/overview", views.ops_overview, name="ops-overview"),
    path("openapi.json", views.openapi_json, name="openapi"),
    path("docs", views.api_docs, name="docs"),
]
# Anything else under /api/ is answered by config/urls.py's last pattern (jobs.api.views.api_not_found).
