"""URLs of the token endpoints."""

from django.urls import path

from accounts import views

urlpatterns = [
    path("token", views.TokenObtainView.as_view(), name="token-obtain"),
    path("token/refresh", views.TokenRefreshView.as_view(), name="token-refresh"),
    path("token/verify", views.TokenVerifyView.as_view(), name="token-verify"),
    path("token/revoke", views.TokenRevokeView.as_view(), name="token-revoke"),
    path("logout", views.TokenRevokeView.as_view(), name="logout"),
]
