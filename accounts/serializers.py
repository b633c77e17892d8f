"""Serializers of the token endpoints: obtain, refresh, verify and revoke."""

from django.contrib.auth import authenticate, get_user_model
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, serializers
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings

from accounts.throttling import login_throttle
from accounts.tokens import AccessToken, RefreshToken, issue_access_token
from routing.headers import client_address


def token_pair_data(refresh, access):
    """Return the response body for a new access token and its refresh token."""
    return {
        "access": str(access),
        "refresh": str(refresh),
        "token_type": "Bearer",
        "expires_in": int(access.lifetime.total_seconds()),
    }


class TokenObtainSerializer(serializers.Serializer):
    """Check a username and password and issue an access and a refresh token."""

    username = serializers.CharField(write_only=True, max_length=150)
    password = serializers.CharField(write_only=True, max_length=4096, trim_whitespace=False)

    default_error_messages = {
        # One message for an unknown user, a wrong password and an inactive user.
        "no_active_account": _("No active account found with the given credentials."),
    }

    def validate(self, attrs):
        request = self.context["request"]
        client_ip, _trusted = client_address(request)
        # The check comes before authenticate(), so a blocked caller learns
        # nothing about the password, and known and unknown users cost the same.
        wait = login_throttle.retry_after(attrs["username"], client_ip)
        if wait:
            raise exceptions.Throttled(wait, detail="Too many failed logins for this username or address.")
        user = authenticate(request=request, username=attrs["username"], password=attrs["password"])
        if user is None or not user.is_active:
            raise exceptions.AuthenticationFailed(self.error_messages["no_active_account"], "no_active_account")
        login_throttle.reset_username(user.get_username())
        refresh = RefreshToken.for_user(user)
        return token_pair_data(refresh, issue_access_token(refresh, user))


class TokenRefreshSerializer(serializers.Serializer):
    """Exchange a refresh token for a new access token with the user's current roles, rotating the refresh token."""

    refresh = serializers.CharField(write_only=True)

    default_error_messages = {
        "no_active_account": _("No active account found for the given token."),
    }

    def validate(self, attrs):
        refresh = RefreshToken(attrs["refresh"])
        user_id = refresh.payload.get(api_settings.USER_ID_CLAIM)
        user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
        if user is None or not user.is_active:
            raise exceptions.AuthenticationFailed(self.error_messages["no_active_account"], "no_active_account")

        # Blacklisting the used refresh token makes it single-use: a stolen copy
        # that is replayed after rotation is rejected.
        refresh.blacklist()
        new_refresh = RefreshToken.for_user(user)
        return token_pair_data(new_refresh, issue_access_token(new_refresh, user))


class TokenVerifySerializer(serializers.Serializer):
    """Check that a token, access or refresh, is valid and not revoked."""

    token = serializers.CharField(write_only=True)

    def validate(self, attrs):
        raw = attrs["token"]
        try:
            AccessToken(raw)
        except TokenError:
            token = RefreshToken(raw)
            token.check_blacklist()
        return {}


class TokenRevokeSerializer(serializers.Serializer):
    """Blacklist a refresh token, for example on logout."""

    refresh = serializers.CharField(write_only=True)

    def validate(self, attrs):
        RefreshToken(attrs["refresh"]).blacklist()
        return {}
