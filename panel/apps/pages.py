"""Applications in the panel.  A member sees a site's application, or installs one on a PHP
site (the admin password is shown on the answer to that form only), and may pick one in
the new-site form; staff build, retire and re-enable platforms, see how many sites lag
behind each application's newest platform, and move a platform's sites to another.
Every write goes through ``panel.apps.service``, as the API's (``panel.apps.api``) do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, get_args

from fastapi import APIRouter, Response
from sqlalchemy import select
from starlette.datastructures import FormData

from panel.apps import inventory, service
from panel.apps.models import AppStatus, Platform, SiteApp
from panel.apps.schemas import DebianIn, InstallIn, PlatformIn, PlatformPatch, UpdateIn
from panel.audit import service as audit
from panel.core.errors import Invalid, NotFound
from panel.core.objects import apply_changes, get_visible, get_writable
from panel.sites import pages as sites
from panel.sites.models import Site
from panel.tasks.models import Task, TaskKind
from panel.web.core import (
    CsrfForm,
    FormErrors,
    PageRoute,
    Web,
    WebDep,
    account_of,
    attempt_form,
    page_of,
    redirect,
    render_flashed,
    text,
)
from panel.web.i18n import _

router = APIRouter(route_class=PageRoute, include_in_schema=False)

T = TypeVar("T")

# The inputs of each form: a refusal about another field is said above the form.
FIELDS: dict[str, tuple[str, ...]] = {
    "install": ("platform_id", "title", "admin_user", "admin_email"),
    "build": ("name", "source", "package", "path", "sha256"),
    "update": ("from_id", "target_id", "batch"),
    "auto": ("auto_id", "auto_update", "window_weekday", "window_hour", "window_hours"),
}
BEHIND_SHOWN = 50  # sites behind listed on the page; the CSV has them all
# Words that reach the templates as data: application statuses, the tasks' kinds.
WORDS = (
    _("installing"),
    _("active"),
    _("updating"),
    _("failed"),
    _("app-install"),
    _("app-update"),
    _("app-scan"),
)
WEEKDAYS = (_("Monday"), _("Tuesday"), _("Wednesday"), _("Thursday"), _("Friday"),
            _("Saturday"), _("Sunday"))  # fmt: skip
UNDER_WAY = (AppStatus.installing, AppStatus.updating)
# The service's name for what a form calls otherwise.
ALIASES = {"site_ids": "from_id"}


def _attempt(web: Web, form: str, write: Callable[[], T]) -> T | tuple[int, FormErrors]:
    """One write of ``form`` through the service (``attempt_form``); the service's
    ``site_ids`` is the update form's platform."""
    return attempt_form(web, write, FIELDS[form], ALIASES)


def _id(raw: str) -> int | str | None:
    """A select's value as a number when it is one (pydantic says what is wrong if not)."""
    if not raw:
        return None
    return int(raw) if raw.isdigit() else raw


def installable(web: Web) -> list[Platform]:
    """The platforms a member may install from: enabled, of an app Konbit installs."""
    stmt = select(Platform).where(Platform.enabled.is_(True), Platform.app.in_(service.INSTALLABLE))
    return list(web.db.scalars(stmt.order_by(Platform.app, Platform.id.desc())))


def platform_label(platform: Platform) -> str:
    return f"{platform.app} {platform.version} ({platform.name})"


# -- a site's application ------------------------------------------------------------------


def _app_page(
    web: Web,
    site: Site,
    status: int = 200,
    errors: FormErrors | None = None,
    values: dict[str, Any] | None = None,
    **ctx: Any,
) -> Response:
    account = account_of(web, site.account_id)
    app = web.db.scalar(select(SiteApp).where(SiteApp.site_id == site.id))
    tasks = web.db.scalars(
        select(Task)
        .where(
            Task.account_id == site.account_id,
            Task.site_id == site.id,
            Task.kind == TaskKind.app_install,
        )
        .order_by(Task.id.desc())
        .limit(5)
    ).all()
    shown = {
        "platform_id": "",
        "title": "",
        "admin_user": "admin",
        "admin_email": web.p.user.email,
        **(values or {}),
    }
    ctx.setdefault("password", None)
    ctx.setdefault("task", None)
    ctx.setdefault("created", False)
    response = render_flashed(
        web,
        "panel/apps/site_app.html",
        status,
        account=account,
        site=site,
        app=app,
        platform=web.db.get(Platform, app.platform_id) if app is not None else None,
        platforms=[(str(p.id), platform_label(p)) for p in installable(web)],
        tasks=tasks,
        under_way=app is not None and app.status in UNDER_WAY and ctx["password"] is None,
        writable=web.can_write(account.id) and site.status != "deleting",
        errors=errors or FormErrors(),
        values=shown,
        **ctx,
    )
    if ctx["password"] is not None:  # shown once: never kept by a cache or a history
        response.headers["Cache-Control"] = "no-store"
    return response


@dataclass(frozen=True)
class Installed:
    task: Task
    password: str  # the admin's: in this answer only, never stored


def _install(web: Web, site: Site, values: dict[str, Any], created: bool = False) -> Response:
    """Install through ``service.install`` (its checks, its task); the answer is the only
    place the admin password ever appears.  ``created``: the site was made just now."""

    def write() -> Installed:
        body = {k: v for k, v in values.items() if v not in ("", None)}
        if "platform_id" in body:
            body["platform_id"] = _id(body["platform_id"])
        _app, task, password = service.install(web.db, web.p, site, InstallIn.model_validate(body))
        web.db.commit()
        return Installed(task, password)

    outcome = _attempt(web, "install", write)
    if isinstance(outcome, tuple):
        status, errors = outcome
        return _app_page(web, site, status, errors, values, created=created)
    return _app_page(web, site, 202, password=outcome.password, task=outcome.task, created=created)


@router.get("/sites/{site_id}/app")
def site_app(site_id: int, web: WebDep) -> Response:
    return _app_page(web, get_visible(web.db, web.p, Site, site_id))


@router.post("/sites/{site_id}/app")
def install_app(site_id: int, web: WebDep, form: CsrfForm) -> Response:
    site = get_writable(web.db, web.p, Site, site_id)
    values = {name: text(form, name) for name in FIELDS["install"]}
    return _install(web, site, values)


# -- the new-site form's "application to install" ------------------------------------------


def _new_site_part(web: Web, form: FormData | None) -> dict[str, Any]:
    return {
        "platforms": [(str(p.id), platform_label(p)) for p in installable(web)],
        "values": {
            "platform_id": text(form, "platform_id") if form else "",
            "title": text(form, "title") if form else "",
        },
    }


def _after_new_site(web: Web, site: Site, form: FormData) -> Response | None:
    """The site is made: install the chosen application on it, titled with the site's name
    unless given one.  A refusal shows on the site's application page, the form filled."""
    if not text(form, "platform_id"):
        return None
    values = {
        "platform_id": text(form, "platform_id"),
        "title": text(form, "title") or site.domain,
        "admin_user": "admin",
        "admin_email": web.p.user.email,
    }
    return _install(web, site, values, created=True)


NEW_SITE_PART = sites.NewSitePart("panel/apps/_new_site.html", _new_site_part, _after_new_site)
if NEW_SITE_PART not in sites.NEW_SITE_PARTS:
    sites.NEW_SITE_PARTS.append(NEW_SITE_PART)


# -- staff: platforms, how far behind each application is, updates --------------------------


def _staff_page(
    web: Web,
    status: int = 200,
    errors: dict[str, FormErrors] | None = None,
    values: dict[str, Any] | None = None,
) -> Response:
    web.require_staff()
    platforms = list(web.db.scalars(select(Platform).order_by(Platform.app, Platform.id)))
    updates = page_of(
        web,
        select(Task).where(Task.kind == TaskKind.app_update),
        Task.id,
        newest_first=True,
        size=10,
        prefix="t",
    )
    shown = {
        "name": "",
        "source": "debian",
        "package": "wordpress",
        "path": "",
        "sha256": "",
        "from_id": "",
        "target_id": "",
        "batch": "10",
        "auto_id": "",
        "auto_update": "1",
        "window_weekday": "",
        "window_hour": "3",
        "window_hours": "2",
        **(values or {}),
    }
    behind, more = inventory.entries(web.db, behind=True, limit=BEHIND_SHOWN)
    return render_flashed(
        web,
        "panel/apps/staff.html",
        status,
        platforms=platforms,
        counts=inventory.sites_per_platform(web.db),
        standings=inventory.summary(web.db),
        updates=updates,
        behind=behind,
        more_behind=more is not None,
        scans=page_of(
            web,
            select(Task).where(Task.kind == TaskKind.app_scan),
            Task.id,
            newest_first=True,
            size=3,
            prefix="s",
        ),
        weekdays=[(str(i), web._(day)) for i, day in enumerate(WEEKDAYS)],
        errors={**{k: FormErrors() for k in FIELDS}, **(errors or {})},
        values=shown,
        packages=[(name, name) for name in get_args(DebianIn.model_fields["package"].annotation)],
    )


@router.get("/staff/apps")
def staff_apps(web: WebDep) -> Response:
    return _staff_page(web)


@router.post("/staff/apps/platforms")
def build_platform(web: WebDep, form: CsrfForm) -> Response:
    """Build a platform from a Debian package or an archive on the panel machine and its
    published checksum (``service.create_platform``); this request waits for the build."""
    p = web.require_staff()
    values = {name: text(form, name) for name in FIELDS["build"]}
    source: dict[str, Any] = {"type": values["source"]}
    if values["source"] == "archive":
        source |= {"path": values["path"], "sha256": values["sha256"].lower()}
    else:
        source |= {"package": values["package"]}

    def write() -> Platform:
        body = PlatformIn.model_validate({"name": values["name"], "source": source})
        platform = service.create_platform(web.db, p, web.request.app.state.settings, body)
        web.db.commit()
        return platform

    outcome = _attempt(web, "build", write)
    if isinstance(outcome, tuple):
        status, errors = outcome
        return _staff_page(web, status, {"build": errors}, values)
    return redirect(
        "/staff/apps",
        web._("Platform %(name)s built: %(app)s %(version)s.")
        % {"name": outcome.name, "app": outcome.app, "version": outcome.version},
    )


@router.post("/staff/apps/platforms/{platform_id}/enabled")
def enable_platform(platform_id: int, web: WebDep, form: CsrfForm) -> Response:
    """Retire a platform (no new site goes on it; its sites stay) or bring it back."""
    p = web.require_staff()
    platform = web.db.get(Platform, platform_id)
    if platform is None:
        raise NotFound("platform")
    changes = apply_changes(platform, {"enabled": text(form, "enabled") == "1"})
    if changes:
        audit.record(web.db, p, "update", platform, changes, object_type="platform")
    web.db.commit()
    said = (
        _("Platform %(name)s enabled: members may install from it.")
        if platform.enabled
        else _("Platform %(name)s retired: no new site goes on it; its sites stay.")
    )
    return redirect("/staff/apps", web._(said) % {"name": platform.name})


@router.post("/staff/apps/update")
def update_platform(web: WebDep, form: CsrfForm) -> Response:
    """Move every site of one platform to another of the same application
    (``service.start_update``: per site a backup, the switch, the updater, a health check,
    the backup restored on any failure), followed in its task."""
    p = web.require_staff()
    values = {name: text(form, name) for name in FIELDS["update"]}

    def write() -> Task:
        if not values["from_id"].isdigit():
            raise Invalid("from_id", "Field required")
        given = {"target_id": _id(values["target_id"]), "batch": _id(values["batch"])}
        body = UpdateIn.model_validate({k: v for k, v in given.items() if v is not None})
        platform = web.db.get(Platform, int(values["from_id"]))
        target = web.db.get(Platform, body.target_id)
        if platform is None or target is None:
            raise NotFound("platform")
        task = service.start_update(web.db, p, platform, target, None, body.batch)
        web.db.commit()
        return task

    outcome = _attempt(web, "update", write)
    if isinstance(outcome, tuple):
        status, errors = outcome
        return _staff_page(web, status, {"update": errors}, values)
    return redirect("/staff/apps", web._("Update started: task %(id)s.") % {"id": outcome.id})


@router.post("/staff/apps/auto")
def auto_update(web: WebDep, form: CsrfForm) -> Response:
    """A platform's automatic updates: on or off, and their maintenance window (UTC)."""
    p = web.require_staff()
    values = {name: text(form, name) for name in FIELDS["auto"]}

    def write() -> Platform:
        raw = values["auto_id"]
        platform = web.db.get(Platform, int(raw)) if raw.isdigit() else None
        if platform is None:
            raise Invalid("auto_id", "Field required")
        body = PlatformPatch.model_validate(
            {
                "auto_update": values["auto_update"] == "1",
                "window_weekday": _id(values["window_weekday"])
                if values["window_weekday"]
                else None,
                "window_hour": _id(values["window_hour"]),
                "window_hours": _id(values["window_hours"]),
            }
        )
        changes = apply_changes(platform, body.model_dump(exclude={"enabled"}))
        if changes:
            audit.record(web.db, p, "update", platform, changes, object_type="platform")
        web.db.commit()
        return platform

    outcome = _attempt(web, "auto", write)
    if isinstance(outcome, tuple):
        status, errors = outcome
        return _staff_page(web, status, {"auto": errors}, values)
    said = (
        _("Automatic updates of %(name)s on: in each window its sites move to the newest platform.")
        if outcome.auto_update
        else _("Automatic updates of %(name)s off.")
    )
    return redirect("/staff/apps", web._(said) % {"name": outcome.name})


@router.post("/staff/apps/scan")
def scan_now(web: WebDep, form: CsrfForm) -> Response:
    """Read every web host's sites for the application they run now (also done daily)."""
    task = inventory.start_scan(web.db, web.require_staff())
    web.db.commit()
    return redirect("/staff/apps", web._("Scan started: task %(id)s.") % {"id": task.id})


@router.get("/staff/apps/inventory.csv")
def inventory_csv(web: WebDep) -> Response:
    """Every site's application, version and platform beside the newest, as CSV."""
    web.require_staff()
    return Response(
        inventory.csv_text(web.db),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="konbit-apps-inventory.csv"'},
    )
