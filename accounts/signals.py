"""Count failed logins and reset the count on success, for the token endpoint and the console alike."""

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from accounts.throttling import login_throttle
from routing.headers import client_address


@receiver(user_login_failed, dispatch_uid="jwtgate-login-failed")
def record_login_failure(sender, credentials, request=None, **kwargs):
    if request is None:
        return
    client_ip, _trusted = client_address(request)
    login_throttle.record_failure(credentials.get("username", ""), client_ip)


@receiver(user_logged_in, dispatch_uid="jwtgate-logged-in")
def reset_login_failures(sender, user, request=None, **kwargs):
    login_throttle.reset_username(user.get_username())
