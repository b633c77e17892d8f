"""Gunicorn settings for the gateway: gunicorn -c gatewaysite/gunicorn.conf.py gatewaysite.wsgi

The worker class is gthread because the proxy blocks on upstream I/O: while one
thread waits for an upstream, the other threads of the same worker keep serving
requests. The benchmark measures gevent beside it (docs/benchmarks.md): a
forwarding loop with no checks cost 6 to 16% less CPU per request under gevent,
which does not outweigh monkey-patching the database drivers, the health
checker's file lock and the metrics thread. docs/upstreams.md shows how the
thread count was chosen.

The bind address, workers and threads come from environment variables, with
defaults for one machine. A gunicorn command-line option overrides any value here.
"""

import os

# host:port, or several separated by commas.
bind = [address.strip() for address in os.environ.get("JWTGATE_BIND", "127.0.0.1:8000").split(",") if address.strip()]
workers = int(os.environ.get("JWTGATE_WORKERS", "2"))
threads = int(os.environ.get("JWTGATE_THREADS", "32"))
worker_class = "gthread"

# Seconds. A gthread worker reports to the arbiter from its main loop, not from
# the request threads, so `timeout` restarts a stuck worker but does not cut a
# slow request short. The upstream connect and read timeouts bound each request.
timeout = 60
graceful_timeout = 30
keepalive = 5

# The gateway writes one access-log line per proxied request through Python
# logging (logger routing.access), so gunicorn's own access log stays off.
accesslog = None
errorlog = "-"

# The gateway decides which peers may set X-Forwarded-* (JWTGATE_TRUSTED_PROXIES).
# Gunicorn trusts 127.0.0.1 by default and would let a local client turn the
# request scheme into https, so it trusts no peer here.
forwarded_allow_ips = ""

# Gunicorn 25.1 and newer open a control socket for gunicornc at one path per
# user, so each new gunicorn of that user (a test server, the demo's httpbin)
# takes it over. It stays off unless JWTGATE_GUNICORN_CONTROL_SOCKET names a path
# for this instance. Older gunicorn versions ignore both settings.
control_socket = os.environ.get("JWTGATE_GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket
