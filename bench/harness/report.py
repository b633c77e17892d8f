"""Ratios, targets and the two renderings of a benchmark run: the console table and docs/benchmarks.md."""

import statistics
from dataclasses import dataclass
from pathlib import Path

from harness.cases import CASES, JWTGATE_VARIANT, NO_TOKEN_CHECK, SUBJECTS, TIME_BUDGET
from harness.profiling import PROJECT_PACKAGES, REQUEST_FRAME, frame_file

CASE_BY_KEY = {case.key: case for case in CASES}
MB = 1_000_000
MIB = 1024 * 1024


# Reading the runs


def runs_of(record, case, subject):
    return [run for run in record["runs"] if run["case"] == case and run["subject"] == subject]


def per_round(record, case, subject, value):
    """Return {round: value(result)} for the runs of ``subject`` in ``case``."""
    return {run["round"]: value(run["result"]) for run in runs_of(record, case, subject)}


def rps(result):
    return result["rps"]


def p50_ms(result):
    return result["latency_us"]["p50"] / 1000


def p99_ms(result):
    return result["latency_us"]["p99"] / 1000


def cpu_us_per_request(result):
    return result["cpu"]["subject_us_per_request"]


def other_cores(result):
    return result["cpu"]["other_cores"]


def busiest_worker_share(result):
    """Return the busiest worker's share of the workers' CPU time, or None for a subject with fewer than two."""
    workers = result["cpu"].get("worker_cores", [])
    if len(workers) < 2 or not sum(workers):
        return None
    return max(workers) / sum(workers)


def round_ratios(record, numerator, denominator, value=rps):
    """Return the per-round ratios value(numerator) / value(denominator); each side is (case, subject)."""
    top = per_round(record, *numerator, value)
    bottom = per_round(record, *denominator, value)
    return [
        top[number] / bottom[number]
        for number in sorted(top)
        if number in bottom and top[number] is not None and bottom[number]
    ]


def cost_ratios(record, cheaper, dearer):
    """Return the per-round ratios of CPU per request, dearer / cheaper: above 1 when ``cheaper`` costs less."""
    return round_ratios(record, dearer, cheaper, cpu_us_per_request)


def round_differences(record, first, second, value):
    first_values = per_round(record, *first, value)
    second_values = per_round(record, *second, value)
    return [first_values[number] - second_values[number] for number in sorted(first_values) if number in second_values]


def format_spread(values, digits=2):
    """Return the mean of ``values`` with the range over rounds, such as ``0.42 (0.40 to 0.44)``."""
    if not values:
        return "not measured"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({min(values):.{digits}f} to {max(values):.{digits}f})"


# Targets


@dataclass(frozen=True)
class TargetResult:
    """One target's outcome by req/s (or latency or memory), and the cross-check by CPU time per request."""

    text: str
    measured: str
    met: bool | None  # None when it could not be measured
    cpu_measured: str = "-"
    cpu_met: bool | None = None


def ratio_target(record, text, numerator, denominator, minimum):
    """Compare req/s of numerator / denominator with ``minimum``, and the inverse ratio of their CPU per request."""
    ratios = round_ratios(record, numerator, denominator)
    costs = cost_ratios(record, numerator, denominator)
    return TargetResult(
        text,
        format_spread(ratios, digits=3),
        statistics.fmean(ratios) >= minimum if ratios else None,
        format_spread(costs, digits=3),
        statistics.fmean(costs) >= minimum if costs else None,
    )


def targets(record):
    """Return the TargetResult of every target, from the ratios measured in this run."""
    results = [
        ratio_target(record, "Small HS256 GET: jwtgate at least 3x the req/s of django-revproxy + simplejwt",
                     ("small", "jwtgate"), ("small", "peer"), 3.0),
        ratio_target(record, "Small HS256 GET: jwtgate at least 15% of the req/s of HAProxy with jwt_verify",
                     ("small", "jwtgate"), ("small", "haproxy"), 0.15),
        ratio_target(record, "RS256 with a repeated token at least 90% of HS256 (small GET, req/s)",
                     ("small", "jwtgate-rs256"), ("small", "jwtgate"), 0.90),
        ratio_target(record, "64 KiB response: jwtgate at least 3x the req/s of the Python peer",
                     ("big", "jwtgate"), ("big", "peer"), 3.0),
        ratio_target(record, "10,000 routes at least 90% of the req/s with 10 routes (small GET)",
                     ("small", "jwtgate-10k"), ("small", "jwtgate"), 0.90),
        ratio_target(record, "401 for an invalid token at least 3x the req/s of a forwarded small GET",
                     ("invalid", "jwtgate"), ("small", "jwtgate"), 3.0),
        ratio_target(record, "403 for a missing role at least 3x the req/s of a forwarded small GET",
                     ("denied", "jwtgate"), ("small", "jwtgate"), 3.0),
    ]

    added = round_differences(record, ("one_connection", "jwtgate"), ("one_connection", "direct"), p50_ms)
    text = "p50 at one connection within 1 ms of the direct upstream"
    if added:
        results.append(TargetResult(text, format_spread(added, digits=3) + " ms added", statistics.fmean(added) <= 1.0))
    else:
        results.append(TargetResult(text, "not measured", None))

    workers = record.get("memory_kib", {}).get("jwtgate-10k", [])
    text = "Each jwtgate worker under 100 MB RSS with 10,000 routes"
    if workers:
        measured = ", ".join(f"{kib * 1024 / MB:.1f} MB" for kib in workers)
        results.append(TargetResult(text, measured, all(kib * 1024 < 100 * MB for kib in workers)))
    else:
        results.append(TargetResult(text, "not measured", None))
    return results


def plural(count, noun):
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def verdict(met):
    return {True: "met", False: "missed", None: "-"}[met]


# Tables


def case_rows(record, case):
    """Return one row per subject that ran ``case``: label, req/s, p50, p99, ratio to direct, jwtgate ratio, problems."""
    rows = []
    ran = [subject for subject in SUBJECTS if runs_of(record, case.key, subject)]
    for subject in ran:
        rps_values = list(per_round(record, case.key, subject, rps).values())
        p50_values = list(per_round(record, case.key, subject, p50_ms).values())
        p99_values = list(per_round(record, case.key, subject, p99_ms).values())
        cost_values = [value for value in per_round(record, case.key, subject, cpu_us_per_request).values() if value]
        other_values = list(per_round(record, case.key, subject, other_cores).values())
        shares = [share for share in per_round(record, case.key, subject, busiest_worker_share).values() if share]
        to_direct = (
            format_spread(round_ratios(record, (case.key, subject), (case.key, "direct")))
            if "direct" in ran
            else "-"
        )
        jwtgate_to_this = (
            format_spread(round_ratios(record, (case.key, "jwtgate"), (case.key, subject)))
            if "jwtgate" in ran
            else "-"
        )
        cost_to_jwtgate = (
            format_spread(round_ratios(record, (case.key, subject), (case.key, "jwtgate"), cpu_us_per_request))
            if "jwtgate" in ran
            else "-"
        )
        problems = sorted({problem for run in runs_of(record, case.key, subject) for problem in run["problems"]})
        rows.append(
            [
                SUBJECTS[subject].label,
                f"{statistics.fmean(rps_values):,.0f}",
                f"{statistics.fmean(p50_values):.2f}",
                f"{statistics.fmean(p99_values):.2f}",
                f"{statistics.fmean(cost_values):,.0f}" if cost_values else "-",
                to_direct,
                jwtgate_to_this,
                cost_to_jwtgate,
                f"{statistics.fmean(other_values):.2f}",
                ", ".join(f"{100 * share:.0f}%" for share in shares) or "-",
                "; ".join(problems) or "-",
            ]
        )
    return rows


RESULT_HEADERS = [
    "subject",
    "req/s",
    "p50 ms",
    "p99 ms",
    "CPU µs/req",
    "req/s ÷ direct",
    "jwtgate req/s ÷ this",
    "CPU/req ÷ jwtgate's",
    "other load, cores",
    "busiest worker",
    "errors",
]


def markdown_table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(headers, rows):
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(headers, widths))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def console_report(record):
    """Return the plain-text summary printed at the end of `make bench`."""
    parts = []
    for case in CASES:
        rows = case_rows(record, case)
        if rows:
            parts.append(f"{case.title}\n" + text_table(RESULT_HEADERS[:-1], [row[:-1] for row in rows]))
    target_rows = [
        [result.text, result.measured, verdict(result.met), result.cpu_measured, verdict(result.cpu_met)]
        for result in targets(record)
    ]
    parts.append("Targets\n" + text_table(TARGET_HEADERS, target_rows))
    return "\n\n".join(parts)


# docs/benchmarks.md


COVERAGE_MARKS = {None: "yes", NO_TOKEN_CHECK: "n/a", TIME_BUDGET: "opt", JWTGATE_VARIANT: "-"}
COVERAGE_LEGEND = "\n".join(
    (
        "- yes: measured in this run.",
        "- n/a: the subject checks no token, so the case does not apply.",
        "- opt: left out to keep `make bench` within 10 minutes. `BENCH_ALL_SUBJECTS=1` adds it.",
        "- -: the jwtgate variants (RS256, 1,000 and 10,000 routes) differ from jwtgate only in the small GET case.",
    )
)


def coverage_rows(record):
    """Return the matrix of cases by subjects: which ran, and a mark for why the others did not."""
    all_subjects = record["settings"]["all_subjects"]
    rows = []
    for case in CASES:
        row = [case.title]
        for subject in SUBJECTS:
            row.append(COVERAGE_MARKS[case.reason_skipped(subject, all_subjects)])
        rows.append(row)
    return rows


# Frames that split a request's Python CPU time into stages, outermost first. The
# breakdown subtracts each inner frame from the one around it.
GUNICORN_REQUEST = REQUEST_FRAME
# Proxied requests enter at routing.wsgi, which bypasses Django's handler.
GATEWAY_ENTRY = "GatewayApplication.__call__ (routing/wsgi.py)"
GATEWAY_PIPELINE = "handle (routing/proxy.py)"
PIPELINE_PARTS = (
    ("sending to the upstream and reading its response head (http.client)", "send (routing/client.py)"),
    ("the access token: cache lookup, or verification with simplejwt and PyJWT",
     "verify_access_token_cached (accounts/tokens.py)"),
    ("writing the access-log line (logging)", "write_access_log (routing/proxy.py)"),
)


def profile_breakdown(profile):
    """Return rows of (stage, share of samples) that add up to the whole profile.

    A stage whose frame does not appear in the profile, for instance after a
    rename in jwtgate, is listed as not found instead of being guessed.
    """
    total = profile["total_samples"]
    inclusive = dict(profile["inclusive"])

    def share(count):
        return f"{100 * count / total:.1f}%"

    def found(frame):
        return frame in inclusive

    rows = []
    gunicorn_request = inclusive.get(GUNICORN_REQUEST, 0)
    rows.append(["gunicorn's main loop: accepting and polling connections", share(total - gunicorn_request)])
    if not (found(GATEWAY_ENTRY) and found(GATEWAY_PIPELINE)):
        rows.append([f"the frames {GATEWAY_ENTRY} and {GATEWAY_PIPELINE}", "not found in the profile"])
        return rows
    rows.append(["gunicorn per request: parsing the request, writing the response",
                 share(gunicorn_request - inclusive[GATEWAY_ENTRY])])
    rows.append(["jwtgate's WSGI entry: request object, request id",
                 share(inclusive[GATEWAY_ENTRY] - inclusive[GATEWAY_PIPELINE])])
    rest = inclusive[GATEWAY_PIPELINE]
    for stage, frame in PIPELINE_PARTS:
        if found(frame):
            rows.append([f"jwtgate: {stage}", share(inclusive[frame])])
            rest -= inclusive[frame]
        else:
            rows.append([f"jwtgate: {stage}", f"not found ({frame})"])
    rows.append(["jwtgate: everything else in the pipeline (path, route, roles, headers, response, metrics)",
                 share(rest)])
    return rows


def profile_section(profile):
    """Return the Markdown lines that summarize the py-spy profile."""
    if profile is None:
        return ["No profile was recorded in this run; the console output of `make bench` says why."]
    total = profile["total_samples"]

    def share(count):
        return f"{100 * count / total:.1f}%"

    self_counts = dict(profile["self"])

    def rows(frames, limit):
        return [[f"`{frame}`", share(count), share(self_counts.get(frame, 0))] for frame, count in frames[:limit]]

    own = [(frame, count) for frame, count in profile["inclusive"] if frame_file(frame).split("/", 1)[0] in PROJECT_PACKAGES]
    lines = [
        f"Load: {profile['load']}. Each gunicorn worker was sampled by its own py-spy:",
        "",
        "```",
        *profile["commands"],
        "```",
        "",
        f"{total:,} samples in all, taken only while a thread of a worker held the GIL, so each share below is a "
        "share of the workers' Python CPU time. Inclusive counts a function with everything it calls, self only "
        f"its own code. {share(profile['request_samples'])} of the samples fall inside gunicorn's per-request "
        f"frame `{REQUEST_FRAME}`, which reads the request, calls Django and writes the response. The rest is "
        "the worker's main loop (accepting connections, polling keep-alive connections), plus stacks that py-spy "
        "read while they changed, because `--nonblocking` samples without pausing the worker.",
        "",
        "Where the time goes, by stage (the shares add up to 100%):",
        "",
        markdown_table(["stage", "share"], profile_breakdown(profile)),
        "",
        "Functions inside request handling with the largest inclusive share:",
        "",
        markdown_table(["function (file)", "inclusive", "self"], rows(profile["inclusive"], 40)),
        "",
        "jwtgate's own functions:",
        "",
        markdown_table(["function (file)", "inclusive", "self"], rows(own, 30)),
        "",
        "Self time by package or standard-library module:",
        "",
        markdown_table(["package", "self"], [[name, share(count)] for name, count in profile["by_package"][:15]]),
        "",
        "Functions with the largest self time:",
        "",
        markdown_table(["function (file)", "self"], [[f"`{frame}`", share(count)] for frame, count in profile["self"][:20]]),
        "",
        "Outside `ThreadWorker.handle`, the functions with the largest self time:",
        "",
        markdown_table(["function (file)", "self"], [[f"`{frame}`", share(count)] for frame, count in profile["main_loop"][:10]]),
    ]
    return lines


def micro_section(micro):
    data = micro.get("data")
    if not data:
        return ["The micro-benchmarks failed in this run; their output:", "", "```", micro.get("output", ""), "```"]
    rows = []
    for bench in data["benchmarks"]:
        stats = bench["stats"]
        extra = ", ".join(
            f"{name.removesuffix('_bytes')} {value / MB:.1f} MB" for name, value in bench.get("extra_info", {}).items()
        )
        rows.append(
            [
                f"`{bench['name']}`",
                f"{stats['min'] * 1e6:,.1f}",
                f"{stats['median'] * 1e6:,.1f}",
                f"{stats['mean'] * 1e6:,.1f}",
                f"{stats['rounds']:,}",
                extra or "-",
            ]
        )
    return [
        f"Command: `{micro['command']}`",
        "",
        markdown_table(["benchmark", "min µs", "median µs", "mean µs", "rounds", "memory (tracemalloc)"], rows),
    ]


def memory_rows(record):
    rows = []
    for name, workers in record.get("memory_kib", {}).items():
        label = SUBJECTS[name].label if name in SUBJECTS else name
        values = ", ".join(f"{kib * 1024 / MB:.1f} MB ({kib / 1024:.1f} MiB)" for kib in workers)
        rows.append([label, str(len(workers)), values or "no worker found"])
    return rows


def introduction_lines(record):
    settings = record["settings"]
    lines = [
        "# Benchmarks",
        "",
        "This page is written by `make bench` (bench/run.sh and the bench/harness package) on every run;",
        "edit the generator in bench/harness/report.py, not this page.",
        "",
        f"Run started {record['started_at']} UTC and took {record['elapsed_seconds'] / 60:.1f} minutes.",
    ]
    if settings["seconds"] < 10 or settings["rounds"] < 2:
        lines += [
            "",
            f"**This was a quick run** ({settings['seconds']} s per load run, {plural(settings['rounds'], 'round')}): "
            "its numbers are noisier than those of the default 10 s runs over 2 rounds.",
        ]
    return lines


TARGET_HEADERS = ["target", "by req/s (mean, range over rounds)", "result", "by CPU per request", "result"]


def targets_lines(record):
    rows = [
        [result.text, result.measured, verdict(result.met), result.cpu_measured, verdict(result.cpu_met)]
        for result in targets(record)
    ]
    return [
        "## Targets",
        "",
        "Each ratio is taken within a round and then averaged, and the range in brackets runs from the lowest to "
        "the highest round. The targets are stated in req/s, but other work on this shared machine moves req/s "
        "from run to run. So each ratio target is also checked with the CPU time that the subjects spent per "
        "request, read from /proc. That ratio is inverted so that the same threshold applies: a value of 3 means "
        "that the other side costs three times as much CPU per request. For the 401 and 403 targets, "
        "\"cheaper\" means exactly that CPU ratio.",
        "",
        markdown_table(TARGET_HEADERS, rows),
    ]


def method_lines(record):
    settings = record["settings"]
    lines = [
        "## What is measured",
        "",
        "Each subject forwards to the same upstream, an nginx that returns a fixed small JSON body "
        f"(`/api/small`, {record['body_bytes']['small']} bytes), a 64 KiB body (`/api/big`), or reads and discards "
        "a POST body (`/api/upload`). "
        f"wrk drives every load run for {settings['seconds']} s with {CASE_BY_KEY['small'].connections} connections "
        "and 2 threads (one connection and one thread in the one-connection case). Every case lists its subjects. "
        "Each round runs every (case, subject) pair once, in the same order, and this run had "
        f"{plural(settings['rounds'], 'round')}, so the subjects alternate A B A B and share the machine's "
        "background noise. Before the first round the harness sends each request once and checks its status "
        "(and the 64 KiB length), and after each run it checks that wrk saw only the expected statuses and no "
        "socket errors.",
        "",
        "The subjects:",
        "",
    ]
    lines += [f"- `{name}`: {server['description']}." for name, server in record["servers"].items()]
    lines += [
        "",
        "The same access token serves every HS256 subject: jwtgate issues it at `/auth/token` to a user with the "
        "role `reader`, and HAProxy and the peer check it with the same secret. The RS256 instance issues its own "
        "token, and every request repeats the same token. The invalid token carries the same claims signed with "
        "another key. jwtgate's route tables contain three measured routes: `/api/**` for `reader` or `admin`, "
        "`/public/**` without a token, and `/ops/**` for `admin` only. Generated routes fill the rest of each "
        "table (bench/harness/routeset.py): prefixes with `**`, patterns with a `*` segment, routes bound to a "
        "host name, and routes with a role rule.",
        "",
        "Equal footing: jwtgate and the peer both run under gunicorn with gthread workers and the same number of "
        "workers. The peer has fewer threads per worker (see the list above), which costs it less CPU per request "
        "under this load, and its urllib3 pool keeps one connection per thread, because revproxy's default "
        "pool keeps one connection per host. nginx and HAProxy each get "
        f"{record['native_workers']} workers or threads, one per core. jwtgate writes its access-log line per "
        "request (INFO) to a file. The other subjects write no access log. jwtgate and the gthread floor run in "
        "bench/.venv-jwtgate, which holds jwtgate's runtime dependencies alone, at the versions of .venv, as a "
        "production install would. The floor subjects serve bench/floor/floorapp.py, which forwards with http.client "
        "and checks nothing: no gateway with the same server and client can cost less per request.",
    ]
    return lines


def machine_lines(record):
    machine = record["machine"]
    lines = [
        "## Machine",
        "",
        f"- CPU: {machine['cpu_model']}, `nproc` {machine['nproc']}",
        f"- Memory: {machine['memory']}",
        f"- OS: {machine['os']}, kernel {machine['kernel']}",
        f"- Load average (1, 5, 15 min) at start: {record['load_before']}; at the end: {record['load_after']}.",
        "  The machine is shared with other work, so absolute numbers move between runs, and the ratios are the result.",
        "",
        "## Versions",
        "",
    ]
    for group, versions in record["versions"].items():
        lines.append(f"- {group}: " + ", ".join(f"{name} {version}" for name, version in versions.items()))
    return lines


def results_lines(record):
    lines = ["## Results", ""]
    for case in CASES:
        rows = case_rows(record, case)
        if not rows:
            continue
        lines += [f"### {case.title}", "", f"`{case.method} {case.path}`, expected status {case.expected_status}.", ""]
        lines += [markdown_table(RESULT_HEADERS, rows), ""]
    lines += [
        "Absolute values are means over the rounds. \"CPU µs/req\" is the user and system CPU time per response "
        "of the subject's own processes (master and workers), read from /proc/PID/stat before and after the run. "
        "For a proxy it leaves out the upstream, and for the direct runs it is the upstream itself. "
        "\"req/s ÷ direct\" is the share of the upstream's own rate. \"jwtgate req/s ÷ this\" above 1 means that "
        "jwtgate served more requests per second than that subject, and \"CPU/req ÷ jwtgate's\" above 1 means that "
        "the subject spent more CPU per request than jwtgate. \"Other load\" is the CPU time, in cores, that the "
        "machine spent outside the subject, the upstream and wrk during the run: work of other users of the "
        "machine, which slows every subject. \"Busiest worker\" is, for each round, the share of the workers' "
        "CPU time spent by the busiest worker process. wrk opens its connections once and keeps them alive, and "
        "each stays with the worker that accepted it. When most of them land on one gunicorn worker, that "
        "worker runs at one core while the other idles, and req/s drops by up to half. CPU per request moves "
        "much less, although it can rise as the busy worker's threads contend for its GIL.",
        "",
        "### Which subject ran which case",
        "",
        markdown_table(["case", *SUBJECTS], coverage_rows(record)),
        "",
        COVERAGE_LEGEND,
    ]
    return lines


def memory_and_setup_lines(record):
    setup_rows = [[name, f"{seconds:.1f}"] for name, seconds in record["prepare_seconds"].items()]
    return [
        "## Memory",
        "",
        "VmRSS of each gunicorn worker from /proc/PID/status, read right after the last load round, when every "
        "worker has built its route table.",
        "",
        markdown_table(["subject", "workers", "VmRSS per worker"], memory_rows(record)),
        "",
        "## Setup times",
        "",
        "Seconds that `manage.py` took to prepare the databases (one SQLite file per jwtgate instance, each "
        "larger table applied on a copy of the 10-route one):",
        "",
        markdown_table(["step", "seconds"], setup_rows),
    ]


def micro_lines(record):
    return [
        "## Micro-benchmarks",
        "",
        "pytest-benchmark on single steps of the hot path, in one process with no load running "
        "(bench/test_micro.py). The host-route case builds a table whose 10,000 routes all have the pattern `/**` "
        "and differ only by host. Every route is then a candidate for every path, and the host is compared "
        "route by route.",
        "",
        *micro_section(record["micro"]),
    ]


def commands_lines(record):
    return [
        "## Commands",
        "",
        "Run everything with `make bench`. `BENCH_SECONDS=3 make bench` makes a quick run, `BENCH_ROUNDS` sets the "
        "number of rounds, `BENCH_ALL_SUBJECTS=1` adds the subjects left out of some cases, and "
        "`BENCH_PROFILE_CASE=upload` profiles another case, such as the 1 MiB POST. "
        "`cd bench && ../.venv/bin/python -m harness report --json .results/latest.json --markdown "
        "../docs/benchmarks.md` writes this page again from the last run's record. The configuration "
        "templates are in bench/conf, the peer in bench/peer, and the wrk script in bench/wrk/report.lua. Ports are "
        "the first free ones from `BENCH_FIRST_PORT` (default 18400) on 127.0.0.1.",
        "",
        "Servers, as started in this run:",
        "",
        "```",
        *[f"{name}: {server['command']}" for name, server in record["servers"].items()],
        "```",
        "",
        "Load runs of the first round (`$TOKEN` is the access token of the case):",
        "",
        "```",
        *[run["command"] for run in record["runs"] if run["round"] == 1],
        "```",
    ]


ANALYSIS_PATH = Path(__file__).resolve().parent.parent / "analysis.md"


def analysis_lines():
    """Return the hand-written reading of the results in bench/analysis.md, which each run keeps."""
    if not ANALYSIS_PATH.exists():
        return []
    return ANALYSIS_PATH.read_text().rstrip("\n").splitlines()


def render_markdown(record):
    """Return docs/benchmarks.md for ``record``."""
    sections = [
        introduction_lines(record),
        targets_lines(record),
        analysis_lines(),
        method_lines(record),
        machine_lines(record),
        results_lines(record),
        memory_and_setup_lines(record),
        micro_lines(record),
        ["## Profile of the hot path", "", *profile_section(record.get("profile"))],
        commands_lines(record),
    ]
    if record["problems"]:
        sections.append(["## Problems in this run", "", *[f"- {problem}" for problem in record["problems"]]])
    return "\n\n".join("\n".join(section) for section in sections if section) + "\n"
