from django.urls import path

from . import views

app_name = "sync"

urlpatterns = [path("webhooks/supplier", views.supplier_webhook, name="supplier-webhook")]
