#!/usr/bin/env bash
# Benchmark jwtgate against the upstream itself, nginx, HAProxy with jwt_verify,
# django-revproxy with simplejwt and two floors (bench/floor: forwarding without
# any check under gunicorn), and rewrite docs/benchmarks.md.
#
# `make bench` runs this script after `make install`. It installs nginx, haproxy and
# wrk from Debian (with one `apt-get update` first, and only when one is missing),
# the Python peer into bench/.venv-peer, the harness tools into bench/.venv-tools,
# gunicorn's gevent worker into bench/.venv-gevent, and jwtgate's runtime
# dependencies alone into bench/.venv-jwtgate, which the jwtgate servers run in.
# Meanwhile it prepares one SQLite database per jwtgate instance in a private
# temporary folder. Then it starts every server on 127.0.0.1, runs the interleaved
# load rounds, a py-spy profile and the micro-benchmarks, prints a table, and writes
# docs/benchmarks.md and bench/.results/latest.json. On any exit it stops every
# process it started.
#
# Environment:
#   BENCH_SECONDS          seconds per load run (default 10; 3 makes a quick run)
#   BENCH_ROUNDS           rounds over every case and subject (default 2)
#   BENCH_ALL_SUBJECTS     1 also runs the subjects left out of some cases (takes longer)
#   BENCH_PROFILE_SECONDS  seconds of py-spy profiling (default BENCH_SECONDS; 0 skips it)
#   BENCH_PROFILE_CASE     load case that runs while py-spy samples jwtgate (default small;
#                          also big, upload, public, denied, invalid)
#   BENCH_FIRST_PORT       lowest port to use on 127.0.0.1 (default 18400)
#   BENCH_KEEP_RUN_DIR     1 keeps the temporary folder (logs, configurations, keys)
#   PYTHON                 interpreter for the bench virtual environments (default python3)
set -euo pipefail

cd "$(dirname "$0")/.."

started_at=$(date +%s)
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-2}
PROFILE_SECONDS=${BENCH_PROFILE_SECONDS:-$SECONDS_PER_RUN}
PROFILE_CASE=${BENCH_PROFILE_CASE:-small}
FIRST_PORT=${BENCH_FIRST_PORT:-18400}
PYTHON=${PYTHON:-python3}
PROJECT_PYTHON=.venv/bin/python
PEER_VENV=bench/.venv-peer
TOOLS_VENV=bench/.venv-tools
GEVENT_VENV=bench/.venv-gevent
JWTGATE_VENV=bench/.venv-jwtgate
DEBIAN_PACKAGES="nginx haproxy wrk"

run_dir=""
prepare_pid=""
harness_pid=""
installed_policy=""

die() {
    echo "bench: $*" >&2
    exit 1
}

say() {
    echo "bench: $*" >&2
}

check_whole_number() {
    case $2 in
        '' | *[!0-9]*) die "$1=$2 is not a whole number." ;;
    esac
}

# Stop what this script started: the harness, the prepare step's process group,
# and each server process group that the harness recorded in $run_dir/pids and
# has not stopped itself.
stop_started_processes() {
    if [ -n "$harness_pid" ] && kill -0 "$harness_pid" 2>/dev/null; then
        # The harness stops its servers when it receives SIGTERM.
        kill -TERM "$harness_pid" 2>/dev/null || true
        wait "$harness_pid" 2>/dev/null || true
    fi
    if [ -n "$prepare_pid" ] && kill -0 "$prepare_pid" 2>/dev/null; then
        kill -TERM -- "-$prepare_pid" 2>/dev/null || true
        wait "$prepare_pid" 2>/dev/null || true
    fi

    [ -n "$run_dir" ] && [ -d "$run_dir/pids" ] || return 0
    local pid_file pid
    for pid_file in "$run_dir"/pids/*; do
        [ -f "$pid_file" ] || continue
        pid=$(cat "$pid_file")
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    sleep 2
    for pid_file in "$run_dir"/pids/*; do
        [ -f "$pid_file" ] || continue
        pid=$(cat "$pid_file")
        if kill -0 -- "-$pid" 2>/dev/null; then
            kill -KILL -- "-$pid" 2>/dev/null || true
        fi
    done
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "$installed_policy" ]; then
        rm -f /usr/sbin/policy-rc.d
    fi
    stop_started_processes

    if [ -n "$run_dir" ]; then
        if [ "$status" -eq 0 ] && [ "${BENCH_KEEP_RUN_DIR:-0}" != 1 ]; then
            rm -rf "$run_dir"
        else
            say "logs and configurations are kept in $run_dir"
        fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

check_whole_number BENCH_SECONDS "$SECONDS_PER_RUN"
check_whole_number BENCH_ROUNDS "$ROUNDS"
check_whole_number BENCH_PROFILE_SECONDS "$PROFILE_SECONDS"
check_whole_number BENCH_FIRST_PORT "$FIRST_PORT"
[ "$SECONDS_PER_RUN" -ge 1 ] || die "BENCH_SECONDS must be at least 1."
[ "$ROUNDS" -ge 1 ] || die "BENCH_ROUNDS must be at least 1."
[ "$FIRST_PORT" -ge 1024 ] && [ "$FIRST_PORT" -le 65000 ] || die "BENCH_FIRST_PORT=$FIRST_PORT must be between 1024 and 65000."
[ -x "$PROJECT_PYTHON" ] || die "$PROJECT_PYTHON not found; run 'make install' first (make bench does)."

# Files of this run stay private, except what the nginx workers must read (the
# harness opens those up one by one).
umask 077
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/jwtgate-bench.XXXXXX")

# The databases need only jwtgate's own environment, so they are prepared while
# the packages install. setsid gives the step its own process group for cleanup.
say "preparing the jwtgate databases in the background (log: $run_dir/prepare.log)"
(cd bench && exec setsid "../$PROJECT_PYTHON" -m harness prepare --run-dir "$run_dir" --first-port "$FIRST_PORT") \
    >"$run_dir/prepare.log" 2>&1 &
prepare_pid=$!

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=""
for package in $DEBIAN_PACKAGES; do
    is_installed "$package" || missing="$missing $package"
done
if [ -n "$missing" ]; then
    [ "$(id -u)" -eq 0 ] || die "missing Debian packages:$missing; install them as root (apt-get install$missing) and run again."
    say "installing$missing from Debian"
    # Debian's packages start their system services on install. A policy-rc.d
    # that denies every start keeps this run from leaving nginx on port 80.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        installed_policy=yes
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # The package list is meant to split into words.
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
    if [ -n "$installed_policy" ]; then
        rm -f /usr/sbin/policy-rc.d
        installed_policy=""
    fi
fi
haproxy_version=$(haproxy -v | sed -n 's/^HAProxy version \([0-9]*\.[0-9]*\).*/\1/p')
case $haproxy_version in
    1.* | 2.[0-4]) die "HAProxy $haproxy_version has no jwt_verify; the benchmark needs HAProxy 2.5 or newer." ;;
    '') die "could not read the HAProxy version from 'haproxy -v'." ;;
esac

# ensure_venv DIR PIP_ARGUMENT...: create DIR and install the packages, unless a
# stamp shows that the same arguments, and the same contents of the requirement and
# constraint files among them, are already installed.
ensure_venv() {
    local venv=$1
    shift
    local stamp="$venv/.bench-installed"
    local wanted argument
    wanted=$(
        {
            printf '%s\n' "$@"
            for argument in "$@"; do
                if [ -f "$argument" ]; then cat "$argument"; fi
            done
        } | sha256sum | cut -d' ' -f1
    )
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
        return
    fi
    if [ ! -x "$venv/bin/pip" ]; then
        say "creating $venv"
        "$PYTHON" -m venv "$venv" || die "creating $venv with $PYTHON failed; on Debian, install python3-venv."
    fi
    say "installing into $venv: $*"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q "$@"
    echo "$wanted" >"$stamp"
}

# The peer runs the same gunicorn release as jwtgate.
gunicorn_version=$("$PROJECT_PYTHON" -c 'import importlib.metadata as m; print(m.version("gunicorn"))')
# The micro-benchmarks import jwtgate, so the tools need its dependencies, but not
# the project itself: an install would write build files into the repository.
mapfile -t project_dependencies < <("$PROJECT_PYTHON" -c '
import tomllib
with open("pyproject.toml", "rb") as handle:
    print("\n".join(tomllib.load(handle)["project"]["dependencies"]))
')
ensure_venv "$PEER_VENV" -r bench/requirements-peer.txt "gunicorn==$gunicorn_version"
ensure_venv "$TOOLS_VENV" -r bench/requirements-tools.txt "${project_dependencies[@]}"
ensure_venv "$GEVENT_VENV" -r bench/requirements-gevent.txt "gunicorn==$gunicorn_version"
# The jwtgate servers run with the runtime dependencies only, as a production
# install would, at the versions of .venv. .venv also contains the test and demo
# extras, which the login path imports when present (Django REST framework
# loads psycopg's and pygments' integrations), and which add about 14 MB to a worker.
mkdir -p bench/.results
"$PROJECT_PYTHON" -m pip freeze --disable-pip-version-check --exclude-editable >bench/.results/jwtgate-constraints.txt
ensure_venv "$JWTGATE_VENV" -c bench/.results/jwtgate-constraints.txt "${project_dependencies[@]}"

if ! wait "$prepare_pid"; then
    prepare_pid=""
    tail -n 30 "$run_dir/prepare.log" >&2 || true
    die "preparing the jwtgate databases failed; its log is above."
fi
prepare_pid=""
cat "$run_dir/prepare.log" >&2

all_subjects=()
[ "${BENCH_ALL_SUBJECTS:-0}" = 1 ] && all_subjects=(--all-subjects)
# The harness runs in the background because bash runs a trap only after the
# foreground command ends. The trap passes a signal on to it as SIGTERM.
(
    cd bench
    exec "../$PROJECT_PYTHON" -m harness run \
        --run-dir "$run_dir" \
        --seconds "$SECONDS_PER_RUN" \
        --rounds "$ROUNDS" \
        --profile-seconds "$PROFILE_SECONDS" \
        --profile-case "$PROFILE_CASE" \
        --markdown ../docs/benchmarks.md \
        --json .results/latest.json \
        --started-at "$started_at" \
        "${all_subjects[@]}"
) &
harness_pid=$!
wait "$harness_pid"
harness_pid=""
