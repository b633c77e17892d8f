"""The run step: start every subject, check its responses, run the interleaved load rounds, profile, stop."""

import http.client
import json
import secrets
import shlex
import subprocess

import jwt

from harness import cpu, profiling
from harness.cases import CASES, SUBJECTS
from harness.common import BENCH_DIR, GATEWAY_INSTANCES, HOST, TOOLS_VENV, say
from harness.load import printable_command, run_wrk, send_once, wrk_command
from harness.servers import (
    BIG_BODY_BYTES,
    floor_server,
    gateway_server,
    haproxy_server,
    nginx_server,
    peer_server,
    resident_kib,
)

NATIVE_WORKERS = 2
WARMUP_SECONDS = 1
MICRO_MAX_SECONDS_PER_TEST = 0.5


def build_servers(state):
    """Return every subject's Server by name, in start order."""
    servers = {
        "upstream": nginx_server(state, "upstream", "upstream", NATIVE_WORKERS),
        "nginx": nginx_server(state, "nginx", "proxy", NATIVE_WORKERS),
        "haproxy": haproxy_server(state, NATIVE_WORKERS),
        "peer": peer_server(state),
        "floor": floor_server(state, "floor", "gthread"),
        "floor-gevent": floor_server(state, "floor-gevent", "gevent"),
    }
    for instance in GATEWAY_INSTANCES:
        servers[instance] = gateway_server(state, instance)
    return servers


def obtain_access_token(state, instance):
    """Log in at a jwtgate instance's /auth/token and return the access token."""
    connection = http.client.HTTPConnection(HOST, state.ports[instance], timeout=15)
    try:
        body = json.dumps({"username": state.username, "password": state.password})
        connection.request("POST", "/auth/token", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"POST /auth/token on {instance} returned {response.status}: {data[:300]!r}")
    return json.loads(data)["access"]


def tokens_for(state):
    """Return the tokens of the run: valid HS256 and RS256 access tokens, and an HS256 token with a bad signature."""
    hs256 = obtain_access_token(state, "jwtgate")
    claims = jwt.decode(hs256, options={"verify_signature": False})
    return {
        "HS256": hs256,
        "RS256": obtain_access_token(state, "jwtgate-rs256"),
        # The same claims signed with another key: only the signature is wrong.
        "invalid": jwt.encode(claims, secrets.token_hex(32), algorithm="HS256"),
    }


def expected_body_bytes(case):
    return BIG_BODY_BYTES if case.key == "big" else None


def check_responses(state, schedule, tokens):
    """Send each scheduled request once, and return {case: response body bytes} of the first subject of each case.

    Raise RuntimeError unless every subject responds with the status (and, for the
    64 KiB case, the length) that the case expects.
    """
    problems = []
    body_bytes = {}
    for case, subject in schedule:
        port = state.ports[SUBJECTS[subject].server]
        try:
            status, length = send_once(port, case.request(subject, tokens))
        except (OSError, http.client.HTTPException) as exc:
            problems.append(f"{case.key} on {subject}: {exc.__class__.__name__}: {exc}")
            continue
        if status != case.expected_status:
            problems.append(f"{case.key} on {subject}: status {status}, expected {case.expected_status}")
        expected_length = expected_body_bytes(case)
        if expected_length is not None and length != expected_length:
            problems.append(f"{case.key} on {subject}: body of {length} bytes, expected {expected_length}")
        body_bytes.setdefault(case.key, length)
    if problems:
        raise RuntimeError("Subjects responded unexpectedly, so nothing was measured:\n  " + "\n  ".join(problems))
    return body_bytes


def run_problems(case, result):
    """Return what is wrong with a wrk result: unexpected statuses or socket errors."""
    problems = []
    errors = result["errors"]
    if case.expected_status < 400 and errors["status"]:
        problems.append(f"{errors['status']} responses with status >= 400")
    if case.expected_status >= 400 and errors["status"] != result["requests"]:
        problems.append(f"{result['requests'] - errors['status']} responses below 400, expected {case.expected_status}")
    for kind in ("connect", "read", "write", "timeout"):
        if errors[kind]:
            problems.append(f"{errors[kind]} {kind} errors")
    if not result["requests"]:
        problems.append("no response")
    return problems


def measured_pids(servers, server):
    """Return the process ids of ``server`` and of the upstream behind it (none when it is the upstream)."""
    subject_pids = [server.pid, *server.worker_pids()]
    upstream = servers["upstream"]
    upstream_pids = [] if server is upstream else [upstream.pid, *upstream.worker_pids()]
    return subject_pids, upstream_pids


def worker_memory(servers):
    """Return {server: [VmRSS KiB of each worker]} for the gunicorn-based subjects."""
    memory = {}
    for name in ("peer", *GATEWAY_INSTANCES):
        memory[name] = [resident_kib(pid) for pid in servers[name].worker_pids()]
    return memory


def run_micro_benchmarks(state):
    """Run bench/test_micro.py with pytest-benchmark; return (command, parsed JSON or None, output tail)."""
    output_path = state.path / "micro.json"
    argv = [
        str(TOOLS_VENV / "bin" / "pytest"),
        "-c", str(BENCH_DIR / "pytest.ini"),
        "-p", "no:django",
        "-q",
        f"--benchmark-max-time={MICRO_MAX_SECONDS_PER_TEST}",
        "--benchmark-columns=min,median,mean,ops",
        f"--benchmark-json={output_path}",
        # pytest-benchmark creates its storage folder even when nothing is saved there.
        f"--benchmark-storage=file://{state.path / 'benchmarks'}",
        str(BENCH_DIR / "test_micro.py"),
    ]
    completed = subprocess.run(argv, cwd=BENCH_DIR, capture_output=True, text=True, timeout=300)
    tail = "\n".join((completed.stdout + completed.stderr).splitlines()[-40:])
    if completed.returncode != 0 or not output_path.exists():
        say(f"micro-benchmarks failed with exit status {completed.returncode}:\n{tail}")
        return shlex.join(argv), None, tail
    return shlex.join(argv), json.loads(output_path.read_text()), tail


def run(state, seconds, rounds, all_subjects, profile_seconds, profile_case="small"):
    """Measure every scheduled case and return the results as a JSON-ready dict."""
    schedule = [(case, subject) for case in CASES for subject in case.scheduled(all_subjects)]
    subjects_used = sorted({subject for _case, subject in schedule}, key=list(SUBJECTS).index)
    servers = build_servers(state)
    pid_registry = state.path / "pids"
    results = {
        "runs": [],
        "servers": {},
        "memory_kib": {},
        "profile": None,
        "problems": [],
    }
    try:
        for name, server in servers.items():
            say(f"starting {name} on {HOST}:{state.ports[name]}")
            server.start(pid_registry)
            server.wait_ready(state.ports[name])
            results["servers"][name] = {"command": shlex.join(server.argv), "description": server.description}

        tokens = tokens_for(state)
        results["body_bytes"] = check_responses(state, schedule, tokens)

        say(f"warming up {len(subjects_used)} subjects for {WARMUP_SECONDS} s each")
        warmup_case = CASES[0]
        for subject in subjects_used:
            server = SUBJECTS[subject].server
            run_wrk(state.url(server), warmup_case.request(subject, tokens), WARMUP_SECONDS, 32, 2)

        total = len(schedule) * rounds
        say(f"{total} load runs of {seconds} s: about {total * seconds / 60:.1f} minutes")
        for round_number in range(1, rounds + 1):
            for case, subject in schedule:
                request = case.request(subject, tokens)
                server = servers[SUBJECTS[subject].server]
                url = state.url(server.name)
                argv, env = wrk_command(url, request, seconds, case.connections, case.threads)
                subject_pids, upstream_pids = measured_pids(servers, server)
                before = cpu.snapshot(subject_pids, upstream_pids)
                result = run_wrk(url, request, seconds, case.connections, case.threads)
                after = cpu.snapshot(subject_pids, upstream_pids)
                result["cpu"] = cpu.usage_between(before, after, result["requests"], result["duration_us"] / 1e6)
                problems = run_problems(case, result)
                results["runs"].append(
                    {
                        "round": round_number,
                        "case": case.key,
                        "subject": subject,
                        "command": printable_command(argv, env),
                        "result": result,
                        "problems": problems,
                    }
                )
                note = f" ({'; '.join(problems)})" if problems else ""
                usage = result["cpu"]
                cost = usage["subject_us_per_request"] or 0.0
                say(
                    f"round {round_number}/{rounds} {case.key:<14} {subject:<14} {result['rps']:>9.0f} req/s "
                    f"p50 {result['latency_us']['p50'] / 1000:.2f} ms p99 {result['latency_us']['p99'] / 1000:.2f} ms "
                    f"CPU {cost:.0f} us/req, other load {usage['other_cores']:.2f} cores{note}"
                )

        results["memory_kib"] = worker_memory(servers)

        if profile_seconds > 0:
            case = next(case for case in CASES if case.key == profile_case)
            say(f"profiling the jwtgate workers for {profile_seconds} s with py-spy under the {case.key} case")
            request = case.request("jwtgate", tokens)
            try:
                profile, commands = profiling.record(
                    servers["jwtgate"].worker_pids(), state.url("jwtgate"), request, profile_seconds, state.path
                )
                results["profile"] = profile_summary(profile, commands, case, profile_seconds)
            except RuntimeError as exc:
                say(f"profile not recorded: {exc}")
                results["problems"].append(f"py-spy profile not recorded: {exc}")
    finally:
        for name in reversed(list(servers)):
            servers[name].stop()
        say("servers stopped")

    say("running the micro-benchmarks")
    command, micro, tail = run_micro_benchmarks(state)
    results["micro"] = {"command": command, "data": micro, "output": tail}
    if micro is None:
        results["problems"].append("The micro-benchmarks failed; their output is in the Micro-benchmarks section.")
    return results


def profile_summary(profile, commands, case, seconds):
    """Return the JSON-ready summary of a Profile: the largest counts by function and by package."""
    return {
        "commands": commands,
        "load": f"wrk with the case \"{case.title}\" on jwtgate (10 routes, HS256) for {seconds} s, 32 connections",
        "total_samples": profile.total,
        "request_samples": profile.in_requests,
        "inclusive": profile.inclusive.most_common(120),
        "self": profile.self_time.most_common(60),
        "by_package": profile.by_package.most_common(),
        "main_loop": profile.main_loop.most_common(15),
    }
