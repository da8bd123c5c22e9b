from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

app_name = "exports"

# The page, its login, and the download links (mounted at /exports/ by config/urls.py).
urlpatterns = [
    path("", views.exports_page, name="page"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="exports/login.html", next_page="exports:page", redirect_authenticated_user=True
        ),
        name="login",
    ),  # fmt: skip
    path("logout/", auth_views.LogoutView.as_view(next_page="exports:login"), name="logout"),
    path("download/<str:token>", views.download, name="download"),
]

# The JSON API (mounted at /api/; paths are a contract with frontends: no trailing slashes).
api_urlpatterns = (
    [
        path("exports", views.exports_collection, name="export-collection"),
        path("exports/sources", views.export_sources, name="export-sources"),
        path("exports/<id:export_id>", views.export_detail, name="export-detail"),
    ],
    "exports-api",
)
