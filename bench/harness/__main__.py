"""Command line of the harness: the prepare and run steps that bench/run.sh calls, and the report step."""

import argparse
import datetime
import json
import signal
import sys
import time
from pathlib import Path

from harness import machine, report, runner
from harness.cases import CASES
from harness.common import RunState, say
from harness.prepare import prepare
from harness.runner import NATIVE_WORKERS


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number.")
    return value


def parse_arguments(argv):
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    prepare_parser = commands.add_parser("prepare", help="Pick ports, make keys and prepare the jwtgate databases.")
    prepare_parser.add_argument("--run-dir", type=Path, required=True, help="The private temporary folder of this run.")
    prepare_parser.add_argument("--first-port", type=positive_int, default=18400, help="The lowest port to use.")

    run_parser = commands.add_parser("run", help="Start the subjects, measure them and write the report.")
    run_parser.add_argument("--run-dir", type=Path, required=True, help="The folder that the prepare step filled.")
    run_parser.add_argument("--seconds", type=positive_int, default=10, help="Seconds per load run.")
    run_parser.add_argument("--rounds", type=positive_int, default=2, help="Rounds over every (case, subject) pair.")
    run_parser.add_argument("--all-subjects", action="store_true", help="Also run the subjects left out of some cases.")
    run_parser.add_argument("--profile-seconds", type=int, default=10, help="Seconds of py-spy profiling; 0 skips it.")
    run_parser.add_argument(
        "--profile-case",
        choices=[case.key for case in CASES if "jwtgate" in case.subjects and case.connections > 1],
        default="small",
        help="The load case that runs on jwtgate while py-spy samples it.",
    )
    run_parser.add_argument("--markdown", type=Path, required=True, help="Where to write the Markdown record.")
    run_parser.add_argument("--json", type=Path, required=True, help="Where to write the results as JSON.")
    run_parser.add_argument(
        "--started-at", type=float, default=None, help="Unix time when bench/run.sh started, for the total duration."
    )

    report_parser = commands.add_parser("report", help="Write the Markdown record again from a saved JSON record.")
    report_parser.add_argument("--json", type=Path, required=True, help="The JSON record that a run wrote.")
    report_parser.add_argument("--markdown", type=Path, required=True, help="Where to write the Markdown record.")
    return parser.parse_args(argv)


def run_command(arguments):
    state = RunState.load(arguments.run_dir)
    started = arguments.started_at or time.time()
    record = {
        "started_at": datetime.datetime.fromtimestamp(started, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "settings": {
            "seconds": arguments.seconds,
            "rounds": arguments.rounds,
            "all_subjects": arguments.all_subjects,
            "profile_seconds": arguments.profile_seconds,
            "profile_case": arguments.profile_case,
        },
        "native_workers": NATIVE_WORKERS,
        "machine": machine.machine_info(),
        "versions": machine.all_versions(),
        "prepare_seconds": state.prepare_seconds,
        "load_before": machine.load_average(),
    }
    results = runner.run(
        state,
        arguments.seconds,
        arguments.rounds,
        arguments.all_subjects,
        arguments.profile_seconds,
        arguments.profile_case,
    )
    record.update(results)
    record["load_after"] = machine.load_average()
    record["elapsed_seconds"] = time.time() - started

    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    arguments.json.write_text(json.dumps(record, indent=1))
    arguments.markdown.write_text(report.render_markdown(record))
    print(report.console_report(record))
    say(f"wrote {arguments.markdown} and {arguments.json}")
    return 0


def exit_on_signal(signum, _frame):
    """Turn SIGTERM into SystemExit, so that the servers are stopped on the way out."""
    raise SystemExit(128 + signum)


def main(argv=None):
    signal.signal(signal.SIGTERM, exit_on_signal)
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    if arguments.command == "prepare":
        prepare(arguments.run_dir, arguments.first_port)
        return 0
    if arguments.command == "report":
        record = json.loads(arguments.json.read_text())
        arguments.markdown.write_text(report.render_markdown(record))
        print(report.console_report(record))
        return 0
    return run_command(arguments)


if __name__ == "__main__":
    sys.exit(main())
