"""URLs of the configuration pages: YAML download and upload, change history."""

from django.urls import path

from console.config import views

app_name = "config"

urlpatterns = [
    path("yaml/", views.yaml_page, name="yaml"),
    path("yaml/export/", views.export_yaml, name="export"),
    path("yaml/apply/", views.apply_yaml, name="apply"),
    path("history/", views.history_list, name="history"),
    path("history/<int:change_id>/", views.history_detail, name="history_detail"),
]
