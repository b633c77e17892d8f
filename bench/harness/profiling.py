"""A py-spy profile of jwtgate's workers under load, summed up by function and by package."""

import subprocess
import time
from collections import Counter
from dataclasses import dataclass

from harness.common import TOOLS_VENV
from harness.load import run_wrk

PY_SPY = TOOLS_VENV / "bin" / "py-spy"
SAMPLES_PER_SECOND = 250
# jwtgate's own packages; every other file belongs to a library or the standard library.
PROJECT_PACKAGES = ("routing", "accounts", "gatewaysite")
# The frame in which a gthread worker's thread pool serves one request, from
# reading the request to writing the last byte of the response.
REQUEST_FRAME = "ThreadWorker.handle (gunicorn/workers/gthread.py)"


@dataclass
class Profile:
    """Sample counts of a py-spy recording.

    ``inclusive`` counts, for the samples taken inside REQUEST_FRAME, every function
    from REQUEST_FRAME down, once per sample. ``self_time`` and ``by_package`` count
    the innermost frame of every sample; ``main_loop`` does the same for the samples
    outside REQUEST_FRAME (the worker's accept and poll loop).
    """

    total: int
    in_requests: int
    inclusive: Counter
    self_time: Counter
    by_package: Counter
    main_loop: Counter


def frame_file(frame):
    """Return the file of a py-spy frame such as ``handle (routing/proxy.py)``."""
    if frame.endswith(")") and " (" in frame:
        return frame[frame.rindex(" (") + 2 : -1]
    return ""


def package_of(frame):
    """Return the top-level package or standard-library module of a frame's file."""
    path = frame_file(frame)
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    if path.startswith("/"):
        # py-spy prints a full path for files outside sys.path, such as the standard library.
        path = path.rsplit("/", 1)[-1]
    head = path.split("/", 1)[0]
    return head.removesuffix(".py") or "?"


def parse_raw(texts):
    """Return the Profile of py-spy raw outputs: one ``frame;frame;... count`` line per stack, outermost first."""
    profile = Profile(0, 0, Counter(), Counter(), Counter(), Counter())
    for text in texts:
        for line in text.splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack.split(";")
            profile.total += count
            profile.self_time[frames[-1]] += count
            profile.by_package[package_of(frames[-1])] += count
            if REQUEST_FRAME in frames:
                profile.in_requests += count
                for frame in set(frames[frames.index(REQUEST_FRAME) :]):
                    profile.inclusive[frame] += count
            else:
                profile.main_loop[frames[-1]] += count
    return profile


def py_spy_command(worker_pid, seconds, output_path):
    return [
        str(PY_SPY), "record",
        "--pid", str(worker_pid),
        "--duration", str(seconds),
        "--rate", str(SAMPLES_PER_SECOND),
        "--format", "raw",
        "--nolineno",
        "--gil",
        "--nonblocking",
        "--output", str(output_path),
    ]


def record(worker_pids, url, request, seconds, output_dir):
    """Record every worker with py-spy while wrk loads ``url``; return (Profile, commands), or raise RuntimeError.

    Only samples of the thread that holds the GIL are kept (``--gil``), so the
    shares are shares of the workers' Python CPU time.
    """
    profilers = []
    for pid in worker_pids:
        output_path = output_dir / f"profile-{pid}.raw"
        argv = py_spy_command(pid, seconds, output_path)
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        profilers.append((process, argv, output_path))
    # py-spy needs a moment to attach before the load starts.
    time.sleep(0.5)
    outputs = []
    try:
        run_wrk(url, request, seconds, connections=32, threads=2)
        for process, argv, output_path in profilers:
            output, _ = process.communicate(timeout=seconds + 30)
            if process.returncode != 0 or not output_path.exists():
                raise RuntimeError(f"py-spy failed with exit status {process.returncode}:\n{output}")
            outputs.append(output_path.read_text())
    finally:
        for process, _argv, _path in profilers:
            if process.poll() is None:
                process.kill()
                process.wait()
    return parse_raw(outputs), [" ".join(argv) for _process, argv, _path in profilers]
