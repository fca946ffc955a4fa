"""The lifecycle bench's printing: the tasks against their floors, CPU per process and host,
the components, where one task's time goes, and the code version measured."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from common import Cpu, print_columns
from lifecycle_floor import Component
from lifecycle_tasks import LABELS, Case, median_run
from lifecycle_world import PIPE_LOG, MiB, Run

LOG_LINE = re.compile(r"^\[\s*([\d.]+)s\] (.*)$")


# ----------------------------------------------------------------------------- printing


def mb(n: float) -> str:
    return f"{n / MiB:.1f}"


def rate(n: float, s: float) -> str:
    return f"{n / MiB / s:.1f}" if s > 0 else "-"


def print_tasks(cases: list[Case], repeat: int) -> None:
    print(f"\nTasks against the floor (median of {repeat}; MB = files + uncompressed dump; "
          "wire = gzip'd bytes through the pipes)")  # fmt: skip
    body = []
    for c in cases:
        t, f = median_run(c.tasks), median_run(c.floors)
        body.append((
            LABELS[c.name], mb(c.data), mb(t.wire), f"{t.seconds:.1f}", rate(c.data, t.seconds),
            f"{t.piped:.1f}", f"{t.seconds - t.piped:.1f}", f"{f.seconds:.1f}",
            rate(c.data, f.seconds), f"{t.seconds / f.seconds:.2f}x",
            "FAILED" if any(r.error for r in c.tasks) else "",
        ))  # fmt: skip
    print_columns(
        ("task", "MB", "wire MB", "task s", "MB/s", "in pipes", "rest", "floor s",
         "floor MB/s", "task/floor", ""),
        body,
    )  # fmt: skip
    if repeat > 1:
        for c in cases:
            runs = ", ".join(f"{t.seconds:.1f}/{f.seconds:.1f}" for t, f in
                             zip(c.tasks, c.floors, strict=True))  # fmt: skip
            print(f"  {LABELS[c.name]}: task/floor runs {runs}")


def cpu_row(name: str, cpu: Cpu, hosts: Sequence[str]) -> tuple[str, ...]:
    return (
        name, f"{cpu.seconds:.1f}", f"{cpu.panel:.1f}",
        *(f"{cpu.hosts.get(h, 0.0):.1f}" for h in hosts),
        f"{cpu.other:.1f}", f"{cpu.machine:.1f}", f"{cpu.machine / cpu.seconds:.2f}",
    )  # fmt: skip


def print_cpu(cases: list[Case], comps: list[Component], hosts: Sequence[str]) -> None:
    print("\nCPU seconds (median run of each): panel = this process (the relay's Python and "
          "paramiko; for OpenSSH the ssh clients); a host = every process in it; rest = "
          "the machine's other CPU (the kernel's network path, other runs on the machine); "
          "busy = machine CPU / wall (2 = both cores busy)")  # fmt: skip
    body = []
    for c in cases:
        body.append(cpu_row(f"{LABELS[c.name]}: task", median_run(c.tasks).cpu, hosts))
        body.append(cpu_row("  floor", median_run(c.floors).cpu, hosts))
    for comp in comps:
        body.append(cpu_row(comp.name, comp.run.cpu, hosts))
    print_columns(("case", "wall", "panel", *hosts, "rest", "machine", "busy"), body)


def print_components(comps: list[Component]) -> None:
    print("\nComponents alone (one run each; a host's command with no transfer, or the relay "
          "of raw bytes with nothing to compress)")  # fmt: skip
    body = [
        (c.name, mb(c.data), f"{c.run.seconds:.2f}", rate(c.data, c.run.seconds), c.note)
        for c in comps
    ]
    print_columns(("component", "MB", "s", "MB/s", ""), body)


def print_steps(title: str, run: Run) -> None:
    print(f"\n{title} (its log; step = since the line before)")
    body = []
    last = 0.0
    for line in run.log.splitlines():
        m = LOG_LINE.match(line)
        if not m:
            continue
        at, msg = float(m.group(1)), m.group(2)
        extra = ""
        if p := PIPE_LOG.search(msg):
            n, s = int(p.group(1)), float(p.group(2))
            extra = f"{rate(n, s)} MB/s gz" if s else ""
        body.append((f"{at:.1f}", f"{at - last:.1f}", msg[:90], extra))
        last = at
    tail = max(0.0, run.seconds - last)
    body.append((f"{max(run.seconds, last):.1f}", f"{tail:.1f}", "(run_task returns)", ""))
    print_columns(("at s", "step s", "log line", ""), body)


def code_version() -> str:
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              check=False)  # fmt: skip
        return done.stdout.strip()

    dirty = git("status", "--short", "panel/tasks", "provisioners")
    changed = " ".join(line[3:] for line in dirty.splitlines())
    head = git("log", "-1", "--format=%h %s")[:72]
    return head + (f" + uncommitted: {changed}" if changed else "")
