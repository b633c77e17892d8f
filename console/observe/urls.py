"""URLs of the route tester and the dashboard."""

from django.urls import path

from console.observe import views

app_name = "observe"

urlpatterns = [
    path("tester/", views.tester, name="tester"),
    path("dashboard/", views.dashboard, name="dashboard"),
]
