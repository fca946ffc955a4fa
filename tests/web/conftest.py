"""The web panel through a real HTTP client: users with passwords, logged-in browsers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from panel.accounts import service as accounts
from panel.accounts.models import Membership
from panel.core.db import Database
from tests.conftest import World

PASSWORD = "correct horse battery"


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


class Browser:
    """A cookie-keeping client that logs in through the form, as a person would."""

    def __init__(self, app: Any) -> None:
        self.client = TestClient(app, follow_redirects=False)
        self.csrf = ""

    def get(self, path: str, **kw: Any) -> Any:
        r = self.client.get(path, **kw)
        if 'name="csrf"' in r.text:
            self.csrf = csrf_of(r.text)
        return r

    def post(self, path: str, data: dict[str, Any] | None = None, csrf: bool = True,
             **kw: Any) -> Any:
        body = dict(data or {})
        if csrf:
            body.setdefault("csrf", self.csrf)
        return self.client.post(path, data=body, **kw)

    def login(self, email: str, password: str = PASSWORD) -> Any:
        self.get("/login")
        r = self.post("/login", {"email": email, "password": password, "next": "/"})
        if r.status_code == 303:
            self.get("/profile")  # the session's own CSRF token from now on
        return r


class WebWorld:
    def __init__(self, world: World, db: Database, app: Any) -> None:
        self.world = world
        self.db = db
        self.app = app

    def user(self, email: str, staff: bool = False) -> int:
        with self.db.session() as s:
            user = accounts.create_user(s, email=email, password=PASSWORD, is_staff=staff)
            s.commit()
            return user.id

    def member(self, account: dict[str, Any], email: str, role: str = "owner") -> int:
        uid = self.user(email)
        with self.db.session() as s:
            s.add(Membership(account_id=account["id"], user_id=uid, role=role))
            s.commit()
        return uid

    def browser(self) -> Browser:
        return Browser(self.app)


@pytest.fixture
def web(world: World, db: Database, app: Any) -> Iterator[WebWorld]:
    yield WebWorld(world, db, app)
