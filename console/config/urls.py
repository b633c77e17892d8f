"""URLs of the configuration pages: YAML download and upload, change history."""

urlpatterns = []
