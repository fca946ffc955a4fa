"""The web panel's routes and static files, mounted beside the API. Each domain keeps its
pages in its own folder (``panel/<domain>/pages.py``); this module only gathers them."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from panel.accounts import account_pages
from panel.accounts import pages as accounts
from panel.apps import pages as apps
from panel.audit import pages as audit
from panel.cron import pages as cron
from panel.databases import pages as databases
from panel.dns import pages as dns
from panel.domains import pages as domains
from panel.hosts import pages as hosts
from panel.lists import pages as lists
from panel.mail import pages as mail
from panel.objects import pages as objects
from panel.sites import pages as sites
from panel.tasks import pages as tasks
from panel.usage import pages as usage
from panel.web.core import STATIC

PAGES = (
    accounts,
    hosts,
    account_pages,
    audit,
    usage,
    lists,
    databases,
    sites,
    mail,
    domains,
    tasks,
    cron,
    objects,
    apps,
    dns,
)


def pages_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    for module in PAGES:
        router.include_router(module.router)
    return router


def install(app: FastAPI) -> None:
    app.include_router(pages_router())
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
