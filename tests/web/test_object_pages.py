"""The pages of plugin-declared kinds (the toy plugin's ``toy_note`` and ``toy_banner``),
generated from their spec models: list, create, edit, delete through the forms, the API's
422 beside its field, French, and another account's object as a 404."""

from __future__ import annotations

import enum
import html
import re
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr
from starlette.datastructures import FormData

from panel.objects.models import PluginObject
from panel.objects.pages import form_values, read_spec, spec_fields
from panel.web.i18n import Translator
from provisioners.api import ObjectKind
from tests.conftest import host_key
from tests.web.conftest import WebWorld


def _acme(web: WebWorld, role: str = "owner") -> dict[str, Any]:
    web.world.host(["toy"])
    acme = web.world.account("acme")
    web.member(acme, "alice@acme.test", role)
    return acme


def test_a_member_lists_creates_edits_and_deletes_a_toy_note(web: WebWorld) -> None:
    acme = _acme(web)
    staff = web.world.staff
    b = web.browser()
    b.login("alice@acme.test")

    r = b.get(f"/accounts/{acme['id']}")
    assert f'href="/accounts/{acme["id"]}/objects/toy_note">Toy note</a>' in r.text
    assert f'href="/accounts/{acme["id"]}/objects/toy_banner">Toy banner</a>' in r.text
    r = b.get(f"/accounts/{acme['id']}/objects/toy_note")
    assert r.status_code == 200 and "Nothing here yet." in r.text

    # The form comes from the spec: a text input, and a select for the Literal with its default.
    r = b.get(f"/accounts/{acme['id']}/objects/toy_note/new")
    assert r.status_code == 200
    assert re.search(
        r'<input id="f-spec.text" name="spec.text" type="text" value=""\s+required', r.text
    )
    assert '<select id="f-spec.mode" name="spec.mode"' in r.text
    assert '<option value="public" selected>public</option>' in r.text
    assert '<option value="private">private</option>' in r.text

    r = b.post(
        f"/accounts/{acme['id']}/objects/toy_note",
        {"name": "hello", "spec.text": "Hello there", "spec.mode": "private"},
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/accounts/{acme['id']}/objects/toy_note"
    made = staff.ok("GET", "/objects/toy_note")["items"]
    assert [(o["name"], o["spec"], o["status"]) for o in made] == [
        ("hello", {"text": "Hello there", "mode": "private"}, "pending")
    ]
    note = made[0]
    r = b.get(f"/accounts/{acme['id']}/objects/toy_note")
    assert "hello created; it is pending" in r.text
    assert f'href="/objects/toy_note/{note["id"]}">hello</a>' in r.text
    assert "<td>Hello there</td>" in r.text and "<td>private</td>" in r.text
    assert f'data-poll="toy_note:{note["id"]}"' in r.text
    # The page script's status poll knows plugin objects too.
    polled = b.get("/status", params={"o": f"toy_note:{note['id']}"}).json()
    assert polled[f"toy_note:{note['id']}"]["status"] == "pending"

    r = b.get(f"/objects/toy_note/{note['id']}")
    assert r.status_code == 200 and 'value="Hello there"' in r.text
    assert '<option value="private" selected>private</option>' in r.text
    assert 'name="name"' not in r.text  # the name is fixed once made
    r = b.post(f"/objects/toy_note/{note['id']}", {"spec.text": "Changed", "spec.mode": "public"})
    assert r.status_code == 303, r.text
    got = staff.ok("GET", f"/objects/toy_note/{note['id']}")
    assert got["spec"] == {"text": "Changed", "mode": "public"} and got["version"] > note["version"]

    r = b.get(f"/objects/toy_note/{note['id']}/delete")
    assert r.status_code == 200 and "Delete hello?" in r.text
    assert b.post(f"/objects/toy_note/{note['id']}/delete", csrf=False).status_code == 403
    r = b.post(f"/objects/toy_note/{note['id']}/delete")
    assert r.status_code == 303
    assert staff.ok("GET", f"/objects/toy_note/{note['id']}")["status"] == "deleting"
    # Once deleting, it can no longer change: the form says so instead of saving.
    r = b.post(f"/objects/toy_note/{note['id']}", {"spec.text": "Again"})
    assert r.status_code == 409


def test_a_role_kind_is_created_from_its_form_too(web: WebWorld) -> None:
    acme = _acme(web)
    b = web.browser()
    b.login("alice@acme.test")
    b.get(f"/accounts/{acme['id']}/objects/toy_banner/new")
    r = b.post(f"/accounts/{acme['id']}/objects/toy_banner", {"name": "b1", "spec.text": "Hi"})
    assert r.status_code == 303, r.text
    made = web.world.staff.ok("GET", "/objects/toy_banner")["items"]
    assert [(o["name"], o["host_id"], o["spec"]) for o in made] == [("b1", None, {"text": "Hi"})]


def test_the_services_422_is_shown_beside_its_field(web: WebWorld) -> None:
    acme = _acme(web)
    b = web.browser()
    b.login("alice@acme.test")
    b.get(f"/accounts/{acme['id']}/objects/toy_note/new")
    r = b.post(
        f"/accounts/{acme['id']}/objects/toy_note",
        {"name": "n1", "spec.text": 'quote " here', "spec.mode": "public"},
    )
    assert r.status_code == 422
    error = re.search(r'<p class="error" id="e-spec.text">([^<]+)</p>', r.text)
    assert error and "should match pattern" in html.unescape(error[1]), r.text
    assert 'aria-invalid="true"' in r.text
    assert 'value="quote &#34; here"' in r.text  # what was typed stays, escaped
    r = b.post(
        f"/accounts/{acme['id']}/objects/toy_note",
        {"name": "Not A Name!", "spec.text": "fine", "spec.mode": "public"},
    )
    assert r.status_code == 422 and 'id="e-name">' in r.text
    r = b.post(f"/accounts/{acme['id']}/objects/toy_note", {"name": "n1", "spec.mode": "public"})
    assert r.status_code == 422 and re.search(r'id="e-spec.text">Field required', r.text)
    assert web.world.staff.ok("GET", "/objects/toy_note")["items"] == []

    b.post(
        f"/accounts/{acme['id']}/objects/toy_note",
        {"name": "n1", "spec.text": "fine", "spec.mode": "public"},
    )
    note = web.world.staff.ok("GET", "/objects/toy_note")["items"][0]
    b.get(f"/objects/toy_note/{note['id']}")
    r = b.post(f"/objects/toy_note/{note['id']}", {"spec.text": "fine", "spec.mode": "secret"})
    assert r.status_code == 422 and re.search(
        r'id="e-spec.mode">must be one of: &#39;public&#39;', r.text
    )
    assert web.world.staff.ok("GET", f"/objects/toy_note/{note['id']}")["spec"]["mode"] == "public"


def test_the_pages_speak_french(web: WebWorld) -> None:
    acme = _acme(web)
    b = web.browser()
    b.login("alice@acme.test")
    b.get("/profile")
    b.post("/language", {"lang": "fr", "next": "/"})
    r = b.get(f"/accounts/{acme['id']}/objects/toy_note/new")
    assert r.headers["content-language"] == "fr"
    assert "<title>Nouvel objet : Toy note · Konbit</title>" in r.text
    assert "Minuscules, chiffres et « - », 63 au plus." in r.text
    r = b.get(f"/accounts/{acme['id']}/objects/toy_note")
    assert "<title>Toy note de Acme · Konbit</title>" in r.text
    assert "Rien ici pour l’instant." in html.unescape(r.text)


def test_another_accounts_object_answers_404(web: WebWorld) -> None:
    acme = _acme(web)
    beta = web.world.account("beta")
    theirs = web.world.staff.ok(
        "POST",
        "/objects/toy_note",
        201,
        json={"account_id": beta["id"], "name": "theirs", "spec": {"text": "private stuff"}},
    )
    b = web.browser()
    b.login("alice@acme.test")
    b.get(f"/accounts/{acme['id']}")
    for path in (
        f"/objects/toy_note/{theirs['id']}",
        f"/objects/toy_note/{theirs['id']}/delete",
        f"/accounts/{beta['id']}/objects/toy_note",
        f"/accounts/{beta['id']}/objects/toy_note/new",
    ):
        r = b.get(path)
        assert r.status_code == 404, path
        assert "private stuff" not in r.text and "theirs" not in r.text
    assert b.post(f"/objects/toy_note/{theirs['id']}", {"spec.text": "mine now"}).status_code == 404
    assert b.post(f"/objects/toy_note/{theirs['id']}/delete").status_code == 404
    r = b.post(f"/accounts/{beta['id']}/objects/toy_note", {"name": "x", "spec.text": "x"})
    assert r.status_code == 404
    # The right id under the wrong kind is not found either, nor a kind with no spec.
    assert b.get(f"/objects/toy_banner/{theirs['id']}").status_code == 404
    assert b.get(f"/accounts/{acme['id']}/objects/site").status_code == 404
    got = web.world.staff.ok("GET", f"/objects/toy_note/{theirs['id']}")
    assert got["spec"]["text"] == "private stuff" and got["status"] == "pending"


def test_a_viewer_sees_the_list_but_gets_no_form(web: WebWorld) -> None:
    acme = _acme(web, role="viewer")
    b = web.browser()
    b.login("alice@acme.test")
    r = b.get(f"/accounts/{acme['id']}/objects/toy_note")
    assert r.status_code == 200 and "/objects/toy_note/new" not in r.text
    assert b.get(f"/accounts/{acme['id']}/objects/toy_note/new").status_code == 403


# -- the form of any spec model --------------------------------------------------------------


class Color(enum.Enum):
    red = "red"
    blue = "blue"


class Every(BaseModel):
    title: str = Field(description="What people read")
    count: int = Field(default=3, ge=1, le=10)
    positive: int | None = Field(default=None, gt=0)
    on: bool = True
    tone: Literal["soft", "loud"] = "soft"
    color: Color = Color.red
    names: list[str] = Field(default_factory=list)
    secret: SecretStr | None = None
    password_hash_source: str = ""
    password_hash: str | None = None
    extra: dict[str, int] = Field(default_factory=dict)


def test_every_kind_of_field_gets_its_input() -> None:
    kind = ObjectKind("every", "toy", spec=Every)
    fields = {f.name: f for f in spec_fields(kind, Translator("en"))}
    assert {n: f.widget for n, f in fields.items()} == {
        "title": "text",
        "count": "number",
        "positive": "number",
        "on": "checkbox",
        "tone": "select",
        "color": "select",
        "names": "lines",
        "secret": "password",
        "password_hash_source": "password",
        "extra": "json",
    }
    assert fields["title"].required and fields["title"].hint == "What people read"
    assert not fields["count"].required and fields["count"].default == 3
    assert 'min="1"' in fields["count"].attrs() and 'max="10"' in fields["count"].attrs()
    assert 'min="1"' in fields["positive"].attrs()  # gt=0, for an integer
    assert fields["tone"].choices() == [("soft", "soft"), ("loud", "loud")]
    assert fields["color"].options == ("red", "blue") and fields["color"].default == "red"

    assert "password_hash" not in fields  # the panel's own, never in a form
    stored = {
        "password_hash": "$2b$10$x",
        "title": "T",
        "names": ["a", "b"],
        "secret": "s3cret",
        "password_hash_source": "pw",
        "extra": {"x": 1},
        "color": "blue",
    }
    shown = form_values(list(fields.values()), stored)
    assert shown["spec.names"] == "a\nb" and shown["spec.extra"] == '{"x": 1}'
    assert "spec.secret" not in shown and "spec.password_hash_source" not in shown
    assert shown["spec.count"] == 3 and shown["spec.color"] == "blue"
    assert "$2b$" not in str(shown)

    form = FormData(
        [
            ("spec.title", " T2 "),
            ("spec.count", "7"),
            ("spec.tone", "loud"),
            ("spec.names", "one, two\n\nthree\n"),
            ("spec.secret", ""),
            ("spec.password_hash_source", "new"),
            ("spec.extra", "not json"),
        ]
    )
    spec, again, errors = read_spec(Translator("fr"), list(fields.values()), form, editing=True)
    # A merge patch: emptied inputs are null (the default again), an empty password is kept.
    assert spec == {
        "title": "T2",
        "count": 7,
        "positive": None,
        "on": False,
        "tone": "loud",
        "color": None,
        "names": ["one, two", "three"],
        "password_hash_source": "new",
    }
    assert errors.fields == {"spec.extra": "doit être du JSON"}
    assert "spec.secret" not in again and again["spec.extra"] == "not json"


# -- a kind attached to a site: the SFTP plugin's logins -------------------------------------


def test_an_sftp_login_is_made_on_a_site_of_the_account(web: WebWorld) -> None:
    acme = _acme(web)
    staff = web.world.staff
    web.world.host(["web"])
    web.world.domain(acme, "acme.test")
    site = staff.ok(
        "POST", "/sites", 201, json={"account_id": acme["id"], "domain": "www.acme.test"}
    )
    beta = web.world.account("beta")
    web.world.domain(beta, "beta.test")
    theirs = staff.ok("POST", "/sites", 201, json={"account_id": beta["id"], "domain": "beta.test"})
    b = web.browser()
    b.login("alice@acme.test")
    assert 'objects/sftp_login">SFTP login</a>' in b.get(f"/accounts/{acme['id']}").text
    r = b.get(f"/accounts/{acme['id']}/objects/sftp_login/new")
    assert '<select id="f-site_id" name="site_id"' in r.text
    assert f'<option value="{site["id"]}">www.acme.test</option>' in r.text
    assert "beta.test" not in r.text
    assert 'name="spec.password" type="password"' in r.text
    assert "spec.password_hash" not in r.text  # the panel's own field, never a form's
    assert '<textarea id="f-spec.ssh_keys" name="spec.ssh_keys"' in r.text
    assert re.search(r'id="f-spec.enabled" name="spec.enabled" type="checkbox" checked', r.text)

    good = {
        "name": "web1",
        "spec.scope": "site",
        "spec.password": "long secret 1",
        "spec.enabled": "on",
    }
    r = b.post(f"/accounts/{acme['id']}/objects/sftp_login", good)
    assert r.status_code == 422 and 'id="e-site_id">' in r.text
    assert "long secret 1" not in r.text  # a password is never sent back
    r = b.post(f"/accounts/{acme['id']}/objects/sftp_login", {**good, "site_id": theirs["id"]})
    assert r.status_code == 422 and f"the account has no site {theirs['id']}" in r.text
    r = b.post(
        f"/accounts/{acme['id']}/objects/sftp_login",
        {**good, "site_id": site["id"], "spec.password": "short"},
    )
    assert r.status_code == 422 and 'id="e-spec.password">must be 10 to 128 characters' in r.text
    r = b.post(f"/accounts/{acme['id']}/objects/sftp_login", {**good, "site_id": site["id"]})
    assert r.status_code == 303, r.text
    login = staff.ok("GET", "/objects/sftp_login")["items"][0]
    assert (login["site_id"], login["host_id"], login["spec"]["scope"]) == (
        site["id"],
        None,
        "site",
    )
    r = b.get(f"/accounts/{acme['id']}/objects/sftp_login")
    assert f'<a href="/sites/{site["id"]}">www.acme.test</a>' in r.text and "$2b$" not in r.text

    def stored_hash() -> str:
        with web.db.session() as s:
            return str(s.get_one(PluginObject, login["id"]).spec["password_hash"])

    first = stored_hash()
    # Editing: no password shown; an empty input keeps it, a key is added one per line.
    r = b.get(f"/objects/sftp_login/{login['id']}")
    assert "$2b$" not in r.text and "Leave empty to keep the current password." in r.text
    assert f'<a href="/sites/{site["id"]}">www.acme.test</a>' in r.text
    key = host_key()
    r = b.post(
        f"/objects/sftp_login/{login['id']}",
        {
            "spec.scope": "home",
            "spec.password": "",
            "spec.ssh_keys": f"{key}\n",
            "spec.enabled": "on",
        },
    )
    assert r.status_code == 303, r.text
    got = staff.ok("GET", f"/objects/sftp_login/{login['id']}")["spec"]
    assert got["scope"] == "home" and got["ssh_keys"] == [key] and stored_hash() == first
    r = b.post(
        f"/objects/sftp_login/{login['id']}",
        {"spec.scope": "home", "spec.password": "another secret", "spec.ssh_keys": ""},
    )
    assert r.status_code == 303, r.text
    assert stored_hash() != first
    assert staff.ok("GET", f"/objects/sftp_login/{login['id']}")["spec"]["enabled"] is False


def test_a_plugin_speaks_french_through_its_own_messages(web: WebWorld) -> None:
    """The SFTP plugin ships its French words (``Provisioner.messages``): the panel's
    catalog cannot know a plugin's titles and fields."""
    acme = _acme(web)
    b = web.browser()
    b.login("alice@acme.test")
    b.get("/profile")
    b.post("/language", {"lang": "fr", "next": "/"})
    text = html.unescape(b.get(f"/accounts/{acme['id']}/objects/sftp_login/new").text)
    for words in ("Accès SFTP", "Clés publiques SSH", "Mot de passe", "Dossier"):
        assert words in text
    assert "SSH public keys" not in text
