"""Client addresses behind trusted proxies and the headers sent upstream."""

import pytest
from django.test import RequestFactory

from accounts.tokens import ANONYMOUS, Identity
from routing.headers import client_address, forward_request_headers


def make_request(remote_addr="203.0.113.5", **headers):
    return RequestFactory().get("/api/x", REMOTE_ADDR=remote_addr, **headers)


ADDRESS_CASES = [
    # (trusted proxies, peer, X-Forwarded-For, client, trusted peer)
    ([], "203.0.113.5", "198.51.100.1", "203.0.113.5", False),
    (["10.0.0.0/8"], "203.0.113.5", "198.51.100.1", "203.0.113.5", False),
    (["10.0.0.0/8"], "10.0.0.2", "198.51.100.1", "198.51.100.1", True),
    (["10.0.0.0/8"], "10.0.0.2", "198.51.100.1, 10.0.0.7", "198.51.100.1", True),
    (["10.0.0.0/8"], "10.0.0.2", "1.2.3.4, 198.51.100.1, 10.0.0.7", "198.51.100.1", True),
    (["10.0.0.0/8"], "10.0.0.2", "", "10.0.0.2", True),
    (["10.0.0.2"], "10.0.0.2", "not-an-address", "not-an-address", True),
]


@pytest.mark.parametrize(("trusted", "peer", "forwarded", "client", "trusted_peer"), ADDRESS_CASES,
                         ids=["no-trust", "untrusted-peer", "one-hop", "two-hops", "spoofed-left", "no-header",
                              "garbage"])
def test_client_address_behind_proxies(settings, trusted, peer, forwarded, client, trusted_peer):
    settings.GATEWAY = {**settings.GATEWAY, "TRUSTED_PROXIES": trusted}
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    assert client_address(make_request(peer, **extra)) == (client, trusted_peer)


def test_forward_headers_append_to_trusted_chain(settings):
    settings.GATEWAY = {**settings.GATEWAY, "TRUSTED_PROXIES": ["10.0.0.0/8"]}
    request = make_request("10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.1", HTTP_X_FORWARDED_PROTO="https")
    headers = dict(forward_request_headers(request, ANONYMOUS, "rid", preserve_host=False))
    assert headers["X-Forwarded-For"] == "198.51.100.1, 10.0.0.2"
    assert headers["X-Forwarded-Proto"] == "https"


def test_forward_headers_replace_untrusted_chain(settings):
    request = make_request("203.0.113.5", HTTP_X_FORWARDED_FOR="198.51.100.1", HTTP_X_FORWARDED_PROTO="https")
    headers = dict(forward_request_headers(request, ANONYMOUS, "rid", preserve_host=False))
    assert headers["X-Forwarded-For"] == "203.0.113.5"
    assert headers["X-Forwarded-Proto"] == "http"


def test_forward_headers_drop_extra_identity_names(settings):
    settings.GATEWAY = {**settings.GATEWAY, "EXTRA_IDENTITY_HEADERS": ["X-Tenant"]}
    request = make_request(HTTP_X_TENANT="other", HTTP_X_KEEP="1")
    names = [name for name, _ in forward_request_headers(request, ANONYMOUS, "rid", preserve_host=False)]
    assert "X-Tenant" not in names
    assert "X-Keep" in names


def test_forward_headers_preserve_host():
    request = make_request(HTTP_HOST="api.example.com")
    headers = dict(forward_request_headers(request, ANONYMOUS, "rid", preserve_host=True))
    assert headers["Host"] == "api.example.com"


def test_forward_headers_identity_from_token():
    identity = Identity(user_id="42", roles=frozenset({"b", "a"}), permissions=frozenset({"x:y"}))
    headers = dict(forward_request_headers(make_request(), identity, "rid", preserve_host=False))
    assert headers["X-User-Id"] == "42"
    assert headers["X-User-Roles"] == "a,b"
    assert headers["X-User-Permissions"] == "x:y"
