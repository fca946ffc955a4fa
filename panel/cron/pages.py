"""A member's cron job in the panel, beyond its generic form (``panel.objects.pages``):
its last runs, read from its web host when the page is asked for, and "run now" (a task,
followed on the task's page). Both go through ``panel.cron.service``, as the API's do."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from panel.core.db import ObjectStatus
from panel.core.errors import ProblemError
from panel.cron import service
from panel.objects import pages as objects
from panel.objects.models import PluginObject
from panel.objects.service import kind_of
from panel.sites.models import Site
from panel.web.core import CsrfForm, PageRoute, Web, WebDep, account_of, redirect, render_flashed
from panel.web.i18n import _

router = APIRouter(route_class=PageRoute, include_in_schema=False)

KIND = service.KIND
# Words that reach the templates as data: the "run now" task's kind (its page shows it).
WORDS = (_("cron-run"),)


def runs_url(obj: PluginObject) -> str:
    return f"/objects/{KIND}/{obj.id}/runs"


def can_run(web: Web, obj: PluginObject) -> bool:
    return web.can_write(obj.account_id) and obj.status != ObjectStatus.deleting


def actions(web: Web, obj: PluginObject) -> list[objects.Action]:
    """The job's page links to its last runs and, for who may change it, runs it now."""
    out = [{"label": web._("Last runs"), "url": runs_url(obj)}]
    if can_run(web, obj):
        out.append(
            {"label": web._("Run now"), "url": f"/objects/{KIND}/{obj.id}/run", "method": "post"}
        )
    return out


objects.ACTIONS[KIND] = actions


@router.get("/objects/cron_job/{job_id}/runs")
def runs_page(job_id: int, web: WebDep) -> Response:
    """The job's last runs, newest first. A host that does not answer is said on the page
    (the service's 503, translated where the catalog knows it), never a stack."""
    obj = service.visible_job(web.db, web.p, job_id, write=False)
    account = account_of(web, obj.account_id)
    state = web.request.app.state
    runs: list[dict[str, Any]] = []
    error = ""
    try:
        runs = service.read_runs(state.db, state.settings, state.plugins, web.db, obj, 10)
    except ProblemError as exc:
        if exc.status in (403, 404):
            raise
        error = web.tr.problem(exc.detail)
    return render_flashed(
        web,
        "panel/cron/runs.html",
        account=account,
        obj=obj,
        kind_title=objects.title_of(web, kind_of(KIND)),
        site=web.db.get(Site, obj.site_id) if obj.site_id is not None else None,
        runs=runs,
        error=error,
        writable=can_run(web, obj),
    )


@router.post("/objects/cron_job/{job_id}/run")
def run_now(job_id: int, web: WebDep, form: CsrfForm) -> Response:
    """Queue a run now and show its task; a refusal (one already under way, the job being
    deleted) goes back to the runs page, said there."""
    obj = service.visible_job(web.db, web.p, job_id, write=True)
    try:
        task = service.start_run(web.db, web.p, obj)
        web.db.commit()
    except ProblemError as exc:
        web.db.rollback()
        if exc.status in (403, 404):
            raise
        return redirect(runs_url(obj), web.tr.problem(exc.detail))
    return redirect(f"/tasks/{task.id}")
