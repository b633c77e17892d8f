"""Failed logins: throttled per username and per client address, at /auth/token and in the console."""

import statistics
import time

import pytest

from accounts.throttling import LoginThrottle

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"


@pytest.fixture
def alice(make_user):
    return make_user(username="alice", password=PASSWORD)


def login(client, username="alice", password=PASSWORD, address="127.0.0.1"):
    return client.post("/auth/token", {"username": username, "password": password},
                       content_type="application/json", REMOTE_ADDR=address)


def fail(client, times, username="alice", address="127.0.0.1"):
    for _ in range(times):
        assert login(client, username=username, password="wrong", address=address).status_code == 401


def test_throttle_blocks_after_limit(client, alice):
    fail(client, 5)
    response = login(client)
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 300
    assert response["Content-Type"] == "application/problem+json"


def test_throttle_allows_below_limit(client, alice):
    fail(client, 4)
    assert login(client).status_code == 200


def test_throttle_success_resets_username(client, alice):
    fail(client, 4, address="198.51.100.1")
    assert login(client, address="198.51.100.1").status_code == 200
    # Another address, so that only the username counter could block.
    fail(client, 4, address="198.51.100.2")
    assert login(client, address="198.51.100.2").status_code == 200


def test_throttle_success_keeps_address_count(client, alice, settings):
    settings.GATEWAY = {**settings.GATEWAY, "LOGIN_FAILURE_ADDRESS_LIMIT": 5}
    fail(client, 4)
    assert login(client).status_code == 200
    fail(client, 1)
    assert login(client).status_code == 429


def test_throttle_rejection_logged_once(client, alice, caplog):
    fail(client, 5)
    caplog.clear()
    with caplog.at_level("INFO"):
        login(client)
    lines = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(lines) == 1
    assert "status=429" in lines[0]


def test_throttle_username_blocked_from_any_address(client, alice):
    fail(client, 5, address="198.51.100.1")
    assert login(client, address="198.51.100.2").status_code == 429


def test_throttle_address_blocked_for_any_username(client, alice, settings):
    settings.GATEWAY = {**settings.GATEWAY, "LOGIN_FAILURE_ADDRESS_LIMIT": 6}
    for index in range(6):
        assert login(client, username=f"guess{index}", password="wrong", address="198.51.100.9").status_code == 401
    assert login(client, address="198.51.100.9").status_code == 429
    assert login(client, address="198.51.100.10").status_code == 200


def test_throttle_address_limit_above_username_limit(client, alice, make_user):
    # Five wrong passwords for alice block alice, not bob on the same address.
    make_user(username="bob", password=PASSWORD)
    fail(client, 5)
    assert login(client).status_code == 429
    assert login(client, username="bob").status_code == 200


def test_throttle_username_is_case_insensitive(client, alice):
    fail(client, 5, username="ALICE")
    assert login(client).status_code == 429


def test_throttle_respects_configured_limit(client, alice, settings):
    settings.GATEWAY = {**settings.GATEWAY, "LOGIN_FAILURE_LIMIT": 2}
    fail(client, 2)
    assert login(client).status_code == 429


def test_throttle_window_expires():
    clock = [1000.0]
    throttle = LoginThrottle(clock=lambda: clock[0])
    for _ in range(5):
        throttle.record_failure("bob", "192.0.2.1")
    assert throttle.retry_after("bob", "192.0.2.1") == 301
    clock[0] += 200
    assert throttle.retry_after("bob", "192.0.2.1") == 101
    clock[0] += 101
    assert throttle.retry_after("bob", "192.0.2.1") == 0


def test_throttle_console_login_blocked(client, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    for _ in range(5):
        response = client.post("/console/login/", {"username": "root", "password": "wrong"})
        assert response.status_code == 200
    response = client.post("/console/login/", {"username": "root", "password": PASSWORD})
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0


def test_throttle_console_and_token_share_counter(client, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    fail(client, 5, username="root")
    response = client.post("/console/login/", {"username": "root", "password": PASSWORD})
    assert response.status_code == 429


def test_throttle_unknown_user_costs_like_wrong_password(client, alice, settings):
    settings.GATEWAY = {**settings.GATEWAY, "LOGIN_FAILURE_LIMIT": 1000}

    def seconds(username):
        started = time.perf_counter()
        assert login(client, username=username, password="wrong").status_code == 401
        return time.perf_counter() - started

    # Django hashes the password once for an unknown user too, so the work is the
    # same. Pairs taken back to back cancel the drift of a shared, noisy machine.
    seconds("alice")
    pairs = [(seconds("alice"), seconds("nobody-by-this-name")) for _ in range(9)]
    typical = statistics.median(wrong for wrong, _ in pairs)
    difference = statistics.median(unknown - wrong for wrong, unknown in pairs)
    assert abs(difference) < max(0.005, 0.15 * typical)
