"""Fixtures, form data and HTTP helpers shared by the console tests.

Test modules import the fixtures they use from here by name; ``admin_user`` and
``console`` live in tests/conftest.py.
"""

import os
import re
import socket

import pytest
import requests

PASSWORD = "correct horse battery"


@pytest.fixture
def service(make_upstream):
    return make_upstream(name="service", urls=["http://127.0.0.1:9"])


def route_form(upstream_row, **overrides):
    """Return the POST data of the route add form with every field the form has."""
    data = {
        "name": "orders",
        "enabled": "on",
        "upstream": str(upstream_row.pk),
        "priority": "0",
        "paths": "/api/orders\r\n/api/orders/**",
        "methods": "",
        "hosts": "",
        "auth": "required",
        "strip_prefix": "",
        "max_body_bytes": "",
        "connect_timeout_seconds": "",
        "read_timeout_seconds": "",
        "rules-TOTAL_FORMS": "0",
        "rules-INITIAL_FORMS": "0",
        "rules-MIN_NUM_FORMS": "0",
        "rules-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


CSRF_INPUT_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def csrf_token(page):
    """Return the CSRF token of the first form in an HTML page."""
    match = CSRF_INPUT_RE.search(page)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def console_session(base_url, username, password=PASSWORD):
    """Return a requests.Session signed in to the console the way a browser is: login page, then its form."""
    session = requests.Session()
    session.trust_env = False
    login_url = f"{base_url}/console/login/"
    page = session.get(login_url, timeout=10)
    assert page.status_code == 200
    response = session.post(
        login_url,
        data={
            "csrfmiddlewaretoken": csrf_token(page.text),
            "username": username,
            "password": password,
            "next": "/console/",
        },
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, f"login failed with status {response.status_code}"
    return session


# Which gunicorn worker answered a request. Linux only: the test finds the worker
# process that holds the server side of the request's TCP connection.


def worker_pids(master_pid):
    """Return the pids of the processes whose parent is ``master_pid``: the gunicorn workers."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        # The command name in parentheses may contain spaces, so fields are counted after it.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == master_pid:
            pids.append(int(entry))
    return sorted(pids)


def server_socket_inode(server_port, client_port):
    """Return the inode of the accepted socket 127.0.0.1:server_port <- 127.0.0.1:client_port, or None."""
    local = f"0100007F:{server_port:04X}"
    remote = f"0100007F:{client_port:04X}"
    with open("/proc/net/tcp") as handle:
        for line in handle.readlines()[1:]:
            fields = line.split()
            if fields[1] == local and fields[2] == remote:
                return fields[9]
    return None


def process_holding(inode, pids):
    """Return the pid among ``pids`` that has the socket ``inode`` open, or None."""
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                if os.readlink(f"/proc/{pid}/fd/{descriptor}") == target:
                    return pid
            except OSError:
                continue
    return None


def read_http_response(connection):
    """Read one HTTP/1.1 response with a Content-Length or chunked body; return (status, body bytes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError("the connection closed before the response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(body) < length:
            chunk = connection.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, body[:length]
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while not body.endswith(b"0\r\n\r\n"):
            chunk = connection.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, decode_chunked(body)
    return status, body


def decode_chunked(data):
    body = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return body
        body, data = body + data[:size], data[size + 2:]


def get_with_worker(port, path, worker_pids_of_instance, timeout_seconds=10):
    """Send GET ``path`` on a new keep-alive connection; return (status, body, pid of the worker that answered).

    The connection stays open until the worker is found, because a gthread worker
    keeps the socket of a keep-alive connection open between requests.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_seconds) as connection:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
        connection.sendall(request.encode("latin-1"))
        status, body = read_http_response(connection)
        client_port = connection.getsockname()[1]
        inode = server_socket_inode(port, client_port)
        pid = process_holding(inode, worker_pids_of_instance) if inode else None
    return status, body, pid
