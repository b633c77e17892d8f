"""Gunicorn settings for httpbin, the demo upstream; demo/run.sh passes --bind."""

workers = 1
worker_class = "gthread"
# Threads let httpbin serve other requests while a /delay/N request waits N seconds.
threads = 8

# No control socket: its default path is shared by every gunicorn of the same
# user, so this one would take it over from the gateway or a test server.
control_socket_disable = True
