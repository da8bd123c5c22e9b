from django.urls import path

from . import views

app_name = "jobs"

urlpatterns = [
    path("jobs", views.jobs_collection, name="job-collection"),
    path("jobs/<str:job_id>", views.job_detail, name="job-detail"),
    path("jobs/<str:job_id>/cancel", views.job_cancel_view, name="job-cancel"),
    path("cron/<str:name>", views.cron_trigger, name="cron-trigger"),
    path("openapi.json", views.openapi_json, name="openapi"),
    path("docs", views.api_docs, name="docs"),
]
