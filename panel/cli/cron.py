"""``konbit cron``: a member's cron job run once now, and its last runs, through
``/api/v1/objects/cron_job/{id}/run`` and ``.../runs``. The job itself (schedule, command,
output) is ``konbit objects ... cron_job``.

``run`` prints the queued task; ``--wait`` follows it like ``konbit tasks wait``: its log
(the run's exit code and output) as it comes, exit 0 when the job exited 0, 1 otherwise.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from panel.cli.client import Api, JsonOpt, print_rows
from panel.cli.lifecycle import TASK_COLUMNS, WaitOpt, follow

RUN_COLUMNS = ("id", "how", "started_at", "seconds", "exit_code", "output_bytes", "notes")
JobArg = Annotated[int, typer.Argument(help="The cron job's id (`konbit objects list cron_job`)")]


def run(job_id: JobArg, wait: WaitOpt = False, as_json: JsonOpt = False) -> None:
    """Run a cron job once now, on its web host, as cron would (a task)."""
    api = Api()
    task = api.call("POST", f"/objects/cron_job/{job_id}/run")
    if not (wait and as_json):  # --json --wait: one JSON document, the finished task
        print_rows([task], TASK_COLUMNS, as_json)
    if wait:
        follow(api, task["id"], 24 * 3600.0, as_json)


def runs(
    job_id: JobArg,
    limit: Annotated[int, typer.Option(min=1, max=10, help="At most this many runs")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """A cron job's last runs, newest first, read from its web host now.

    With --json, each run's output too (its last 4 KiB); the host keeps the last 10."""
    page = Api().call("GET", f"/objects/cron_job/{job_id}/runs", params={"limit": limit})
    rows: list[dict[str, Any]] = page["items"]
    print_rows(rows, RUN_COLUMNS, as_json)


def register(app: typer.Typer) -> None:
    sub = typer.Typer(no_args_is_help=True, help="Members' cron jobs: run now, last runs")
    sub.command("run")(run)
    sub.command("runs")(runs)
    app.add_typer(sub, name="cron")
