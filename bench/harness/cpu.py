"""CPU time of the servers, of wrk and of the whole machine, read from /proc around each load run.

Requests per second on a shared two-core machine move with whatever else runs,
but the CPU time that a subject spends per request moves far less, so the report
shows both. The CPU time that nothing in the run accounts for is the other load.
"""

import os
import resource
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid):
    """Return the user plus system CPU seconds of process ``pid``, all its threads included."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name in brackets: state is the first, utime the 12th, stime the 13th.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def tree_cpu_seconds(pids):
    """Return the CPU seconds of the processes ``pids``, skipping any that has exited."""
    total = 0.0
    for pid in pids:
        try:
            total += process_cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def machine_busy_seconds():
    """Return the CPU seconds that all cores spent outside idle and iowait since boot, from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICKS_PER_SECOND


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Snapshot:
    subject: float
    workers: tuple  # CPU seconds of each subject process after the first, its master
    upstream: float
    load_generator: float
    machine: float


def snapshot(subject_pids, upstream_pids):
    """Return the CPU seconds used so far by the subject, the upstream, finished child processes and the machine.

    ``subject_pids`` starts with the subject's main process, followed by its workers.
    """
    return Snapshot(
        subject=tree_cpu_seconds(subject_pids),
        workers=tuple(tree_cpu_seconds([pid]) for pid in subject_pids[1:]),
        upstream=tree_cpu_seconds(upstream_pids),
        load_generator=children_cpu_seconds(),
        machine=machine_busy_seconds(),
    )


def usage_between(before, after, requests, duration_seconds):
    """Return the run's CPU figures: the subject's microseconds per request and the cores each party kept busy.

    ``load_generator`` is the CPU of the child processes that finished in between,
    which during a load run is wrk alone. ``worker_cores`` lists each worker's share,
    which shows when the keep-alive connections of a run landed on one worker.
    """
    subject = after.subject - before.subject
    upstream = after.upstream - before.upstream
    load_generator = after.load_generator - before.load_generator
    machine = after.machine - before.machine
    return {
        "subject_us_per_request": 1e6 * subject / requests if requests else None,
        "subject_cores": subject / duration_seconds,
        "worker_cores": [(end - start) / duration_seconds for start, end in zip(before.workers, after.workers)],
        "upstream_cores": upstream / duration_seconds,
        "wrk_cores": load_generator / duration_seconds,
        "other_cores": max(0.0, machine - subject - upstream - load_generator) / duration_seconds,
    }
