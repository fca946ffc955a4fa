"""The web panel's routes and static files, mounted beside the API."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from panel.web import (
    auth_pages,
    domain_pages,
    list_pages,
    member_pages,
    more_pages,
    staff_pages,
    task_pages,
)
from panel.web.core import STATIC


def pages_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    for sub in (auth_pages.router, staff_pages.router, more_pages.router, member_pages.router,
                domain_pages.router, list_pages.router, task_pages.router):
        router.include_router(sub)
    return router


def install(app: FastAPI) -> None:
    app.include_router(pages_router())
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
