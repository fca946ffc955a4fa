"""``/api/v1/objects/cron_job/{id}/run`` and ``.../runs``: a member's cron job run once
now (a task), and its last runs as its web host recorded them.

The job itself (schedule, command, output, enabled) is created, changed and deleted at
``/api/v1/objects/cron_job`` like any plugin object."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from panel.core.http import READ_ERRORS, WRITE_ERRORS, PrincipalDep, SessionDep
from panel.cron import service
from panel.tasks.schemas import TaskOut

router = APIRouter(prefix="/objects/cron_job", tags=["cron jobs"])


class CronRunOut(BaseModel):
    id: str = Field(description="the run's name on the host")
    how: str = Field(description="cron (on schedule) or now (run now)")
    started_at: dt.datetime
    ended_at: dt.datetime
    seconds: float
    exit_code: int
    output_bytes: int = Field(description="bytes of output kept (at most 64 KiB)")
    notes: list[str] = Field(description="time limit reached, output cut, mailed, ...")
    output: str = Field(description="the last 4 KiB of the output")


class CronRunsOut(BaseModel):
    cron_job_id: int
    host_id: int
    items: list[CronRunOut]


@router.post("/{job_id}/run", status_code=202, response_model=TaskOut, responses=WRITE_ERRORS)
def run_now(job_id: int, session: SessionDep, principal: PrincipalDep) -> Any:
    """Run the job once now, on its host, as cron would (a task: follow it at
    ``/api/v1/tasks/{id}``; its log and result carry the run's output and exit code)."""
    obj = service.visible_job(session, principal, job_id, write=True)
    task = service.start_run(session, principal, obj)
    session.commit()
    return TaskOut.model_validate(task)


@router.get("/{job_id}/runs", response_model=CronRunsOut, responses=READ_ERRORS)
def runs(
    job_id: int,
    session: SessionDep,
    principal: PrincipalDep,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=10)] = 10,
) -> Any:
    """The job's last runs, newest first, read from its web host now (503 when the host
    does not answer)."""
    obj = service.visible_job(session, principal, job_id, write=False)
    host = service.host_of(session, obj)
    state = request.app.state
    items = service.read_runs(state.db, state.settings, state.plugins, session, obj, limit)
    return CronRunsOut(
        cron_job_id=obj.id, host_id=host.id, items=[CronRunOut.model_validate(r) for r in items]
    )
