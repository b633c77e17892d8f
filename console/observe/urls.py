"""URLs of the route tester and the dashboard."""

urlpatterns = []
