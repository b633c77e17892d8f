#!/usr/bin/env bash
# Start the jwtgate demo: httpbin as the upstream and the gateway in front of it.
#
# `make run` installs the project, migrates the database and then runs this
# script. It applies demo/config.yaml, creates the users admin, alice and bob,
# starts both servers on 127.0.0.1 and prints a curl walk-through. Ctrl-C stops
# both servers.
#
# Environment:
#   JWTGATE_PORT                   gateway port (default 8000)
#   JWTGATE_DEMO_UPSTREAM_PORT     httpbin port (default 8081)
#   JWTGATE_ADMIN_PASSWORD         password of admin (default: generated)
#   JWTGATE_ALICE_PASSWORD         password of alice (default: generated)
#   JWTGATE_BOB_PASSWORD           password of bob (default: generated)
#   JWTGATE_VAR_DIR                database, secret key and logs (default var/)
set -euo pipefail

cd "$(dirname "$0")/.."

HOST=127.0.0.1
GATEWAY_PORT=${JWTGATE_PORT:-8000}
UPSTREAM_PORT=${JWTGATE_DEMO_UPSTREAM_PORT:-8081}
VAR_DIR=${JWTGATE_VAR_DIR:-var}
PY=.venv/bin/python
GUNICORN=.venv/bin/gunicorn

gateway_pid=""
upstream_pid=""

die() {
    echo "demo: $*" >&2
    exit 1
}

# Stop the servers this script started, on any exit.
stop_servers() {
    trap - EXIT INT TERM
    local pid
    for pid in $gateway_pid $upstream_pid; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $gateway_pid $upstream_pid; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$gateway_pid$upstream_pid" ]; then
        echo "demo: servers stopped."
    fi
}
trap stop_servers EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

check_port_number() {
    case $2 in
        '' | *[!0-9]*) die "$1=$2 is not a port number." ;;
    esac
    if [ "$2" -lt 1 ] || [ "$2" -gt 65535 ]; then
        die "$1=$2 is not a port number between 1 and 65535."
    fi
}

# Exit with status 0 when nothing listens on 127.0.0.1:PORT.
port_is_free() {
    "$PY" - "$HOST" "$1" <<'EOF'
import socket
import sys

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
# gunicorn sets SO_REUSEADDR too, so a port left in TIME_WAIT counts as free.
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    sock.bind((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(1)
finally:
    sock.close()
EOF
}

# wait_for_http URL PID SECONDS: wait until URL returns a 2xx response.
# Exit status 1 means SECONDS passed first, 2 means the process PID exited first.
wait_for_http() {
    "$PY" - "$1" "$2" "$3" <<'EOF'
import os
import sys
import time
import urllib.request

url, pid, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
# An empty ProxyHandler keeps http_proxy and similar variables out of a local check.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(2)
    try:
        with opener.open(url, timeout=2):
            sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
EOF
}

generate_password() {
    "$PY" -c 'import secrets; print(secrets.token_urlsafe(18))'
}

# create_user NAME PASSWORD FROM_ENV [createuser options]
# A password from the environment is the user's own choice, so Django's password
# validators are skipped for it. A generated password passes them.
create_user() {
    local name=$1 password=$2 from_env=$3
    shift 3
    if [ "$from_env" = yes ]; then
        set -- "$@" --no-validate
    fi
    JWTGATE_PASSWORD=$password "$PY" manage.py createuser "$name" "$@"
}

[ -x "$GUNICORN" ] || die "$GUNICORN not found; start the demo with 'make run', which installs the project first."
"$PY" -c 'import httpbin' 2>/dev/null || die "httpbin is not installed in .venv; run 'make run', which installs the demo extra."

check_port_number JWTGATE_PORT "$GATEWAY_PORT"
check_port_number JWTGATE_DEMO_UPSTREAM_PORT "$UPSTREAM_PORT"
[ "$GATEWAY_PORT" != "$UPSTREAM_PORT" ] || die "JWTGATE_PORT and JWTGATE_DEMO_UPSTREAM_PORT are both $GATEWAY_PORT; choose two ports."
port_is_free "$GATEWAY_PORT" ||
    die "port $GATEWAY_PORT on $HOST is already in use; stop what listens there or choose another port with JWTGATE_PORT=..."
port_is_free "$UPSTREAM_PORT" ||
    die "port $UPSTREAM_PORT on $HOST is already in use; stop what listens there or choose another port with JWTGATE_DEMO_UPSTREAM_PORT=..."

mkdir -p "$VAR_DIR"

# The routes, the upstream and the roles, with the target moved to UPSTREAM_PORT.
sed "s#http://127\.0\.0\.1:8081#http://$HOST:$UPSTREAM_PORT#" demo/config.yaml |
    "$PY" manage.py applyconfig -

admin_from_env=no
alice_from_env=no
bob_from_env=no
[ -n "${JWTGATE_ADMIN_PASSWORD:-}" ] && admin_from_env=yes
[ -n "${JWTGATE_ALICE_PASSWORD:-}" ] && alice_from_env=yes
[ -n "${JWTGATE_BOB_PASSWORD:-}" ] && bob_from_env=yes
admin_password=${JWTGATE_ADMIN_PASSWORD:-$(generate_password)}
alice_password=${JWTGATE_ALICE_PASSWORD:-$(generate_password)}
bob_password=${JWTGATE_BOB_PASSWORD:-$(generate_password)}

create_user admin "$admin_password" "$admin_from_env" --roles admin --superuser --staff
create_user alice "$alice_password" "$alice_from_env" --roles reader
create_user bob "$bob_password" "$bob_from_env"

upstream_log="$VAR_DIR/demo-httpbin.log"
echo "demo: starting httpbin on http://$HOST:$UPSTREAM_PORT (log: $upstream_log)"
# setsid keeps the servers out of the terminal's process group: Ctrl-C reaches
# only this script, whose trap stops each server with one TERM. A gthread worker
# that gets the terminal's INT and then the trap's TERM can hang in shutdown
# until gunicorn's graceful timeout.
setsid "$GUNICORN" -c demo/httpbin.gunicorn.conf.py --bind "$HOST:$UPSTREAM_PORT" httpbin:app >"$upstream_log" 2>&1 &
upstream_pid=$!
if ! wait_for_http "http://$HOST:$UPSTREAM_PORT/get" "$upstream_pid" 20; then
    tail -n 20 "$upstream_log" >&2 || true
    die "httpbin exited or did not respond on http://$HOST:$UPSTREAM_PORT/get within 20 seconds; its log is above."
fi

echo "demo: starting the gateway on http://$HOST:$GATEWAY_PORT"
setsid "$GUNICORN" -c gatewaysite/gunicorn.conf.py --bind "$HOST:$GATEWAY_PORT" gatewaysite.wsgi &
gateway_pid=$!
if ! wait_for_http "http://$HOST:$GATEWAY_PORT/healthz" "$gateway_pid" 30; then
    die "the gateway exited or did not respond on http://$HOST:$GATEWAY_PORT/healthz within 30 seconds; see its log above."
fi

base="http://$HOST:$GATEWAY_PORT"
status="curl -s -o /dev/null -w '%{http_code}\\n'"
# Shell-quote the form fields so that any password can be pasted as printed.
token_for() {
    printf "curl -s %s/auth/token --data-urlencode username=%s --data-urlencode %s | python3 -c 'import json, sys; print(json.load(sys.stdin)[\"access\"])'" \
        "$base" "$1" "$(printf '%q' "password=$2")"
}

cat <<EOF

jwtgate demo is running. Press Ctrl-C to stop the gateway and httpbin.

Console:  $base/console/
          username admin, password $admin_password
Users:    alice (role reader), password $alice_password
          bob (no roles), password $bob_password

Try it with curl in another terminal:

  # Get an access token for alice.
  TOKEN=\$($(token_for alice "$alice_password"))

  # alice may read: 200
  $status -H "Authorization: Bearer \$TOKEN" $base/api/anything

  # Without a token: 401
  $status $base/api/anything

  # alice may not delete: 403
  $status -X DELETE -H "Authorization: Bearer \$TOKEN" $base/api/anything/1

  # admin may: 200
  ADMIN_TOKEN=\$($(token_for admin "$admin_password"))
  $status -X DELETE -H "Authorization: Bearer \$ADMIN_TOKEN" $base/api/anything/1

  # The headers httpbin receives, with the X-User-* and X-Forwarded-* that the gateway adds.
  # show_env=1 makes httpbin list X-Forwarded-For, X-Forwarded-Proto and X-Request-Id too.
  curl -s -H "Authorization: Bearer \$TOKEN" "$base/api/headers?show_env=1"

  # A public route needs no token: 200
  $status $base/public/get

Replace -o /dev/null -w ... with -i to see a response in full, such as the
problem details and WWW-Authenticate of a 401.

EOF

wait "$gateway_pid"
