"""Form errors in the page's language: the checks of panel.core.validation, the services'
refusals and pydantic's common messages all have French (and plain English) wording."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError

from panel.core import validation as v
from panel.lists.models import SubscriptionPolicy
from panel.lists.schemas import ListSettings
from panel.web.i18n import Translator
from tests.web.conftest import WebWorld

FR, EN = Translator("fr"), Translator("en")

BAD: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
    (v.check_text, ("a\nb",)),
    (v.check_slug, ("A",)),
    (v.check_slug, ("ab-",)),
    (v.check_slug, ("root",)),
    (v.check_unix_name, ("Bad Name",)),
    (v.check_unix_name, ("postfix",)),
    (v.normalize_domain, ("",)),
    (v.normalize_domain, ("exa mple.org",)),
    (v.normalize_domain, ("a" * 250 + ".org",)),
    (v.normalize_domain, ("localhost",)),
    (v.normalize_domain, ("-bad.org",)),
    (v.normalize_domain, ("example.123",)),
    (v.normalize_domain, ("xn--zz.org",)),
    (v.normalize_domain, ("paypаl.org",)),  # a Cyrillic 'а'
    (v.normalize_domain, ("аррӏе.org",)),  # Cyrillic look-alikes only
    (v.normalize_address, ("no-at-sign",)),
    (v.normalize_address, ("bad..dots@example.org",)),
    (v.normalize_address, ("postmaster@example.org",)),
    (v.normalize_address, ("news-request@example.org",)),
    (v.normalize_destination, ("bad!@example.org",)),
    (v.check_db_identifier, ("other_blog", "acme", "database")),
    (v.check_db_identifier, ("acme_a_b", "acme", "database")),
    (v.check_db_identifier, ("other_app", "acme", "user")),
    (v.check_db_name_shape, ("1abc",)),
    (v.check_db_name_shape, ("mysql",)),
    (v.check_rel_path, ("../etc",)),
    (v.check_rel_path, ("a" * 201,)),
    (v.check_php_version, ("eight",)),
    (v.check_password, ("short",)),
    (v.check_password, ("x" * 1025,)),
    (v.check_host_name, ("Bad_Host",)),
    (v.check_host_address, ("not a host!",)),
    (v.check_host_key, ("garbage",)),
    (v.check_host_key, ("ssh-ed25519 !!!!",)),
    (v.check_host_key, ("ssh-ed25519 AAAAC3NzaC1yc2EAAAADAQABAAABAQ==",)),
]


def _message(check: Callable[..., Any], args: tuple[Any, ...]) -> str:
    with pytest.raises(ValueError) as info:
        check(*args)
    return str(info.value)


@pytest.mark.parametrize(("check", "args"), BAD, ids=[f"{c.__name__}{a!r}" for c, a in BAD])
def test_every_validation_message_has_a_french_wording(
    check: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    message = _message(check, args)
    assert FR.problem(message) != message, message
    assert "%(" not in FR.problem(message)
    assert EN.problem(message).replace("empty for", "null for") == message


class Form(BaseModel):
    number: int
    short: str = Field(min_length=3, max_length=5)
    required: str = Field(min_length=1)
    items: list[int] = Field(min_length=1, max_length=2)
    ranged: int = Field(ge=1, le=10)
    policy: SubscriptionPolicy
    flag: bool


def _errors(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        Form.model_validate(data)
    return {str(e["loc"][0]): str(e["msg"]) for e in info.value.errors()}


def test_pydantic_messages_are_translated() -> None:
    first = _errors({"number": "abc", "short": "ab", "required": "", "items": [], "ranged": 0,
                     "policy": "nope", "flag": "maybe"})
    second = _errors({"number": 1.5, "short": "abcdefg", "items": [1, 2, 3], "ranged": 11})
    fr = {k: FR.problem(m) for k, m in first.items()}
    assert fr == {
        "number": "doit être un nombre entier",
        "short": "doit comporter au moins 3 caractères",
        "required": "ne doit pas être vide",
        "items": "doit compter au moins un élément",
        "ranged": "doit valoir au moins 1",
        "policy": "doit être l’un de : 'open', 'confirm', 'moderate'",
        "flag": "doit être oui ou non",
    }
    fr = {k: FR.problem(m) for k, m in second.items()}
    assert fr == {
        "number": "doit être un nombre entier",
        "short": "doit comporter au plus 5 caractères",
        "required": "Champ obligatoire",
        "items": "doit compter au plus 2 éléments (il y en a 3)",
        "ranged": "doit valoir 10 au plus",
        "policy": "Champ obligatoire",
        "flag": "Champ obligatoire",
    }
    assert EN.problem(second["items"]) == "must have at most 2 entries (there are 3)"
    with pytest.raises(ValidationError) as info:
        ListSettings.model_validate({"subject_prefix": "<x>"})
    message = str(info.value.errors()[0]["msg"]).removeprefix("Value error, ")
    assert FR.problem(message).startswith("ne doit contenir ni <, ni >")


def test_words_inside_messages_are_translated() -> None:
    assert FR.problem("The domain is still used by sites, mail aliases; delete those first.") == (
        "Le domaine est encore utilisé par : sites, alias de courriel ; supprimez-les d’abord.")
    assert FR.problem("ann@example.org is already on this list as moderator.") == (
        "ann@example.org est déjà sur cette liste comme modérateur.")


def test_a_french_form_shows_french_errors(web: WebWorld) -> None:
    web.world.host(["web"])
    web.world.host(["mail"])
    acme = web.world.account("acme")
    web.world.domain(acme, "acme.test")
    web.member(acme, "alice@acme.test")
    b = web.browser()
    b.login("alice@acme.test")
    b.post("/language", {"lang": "fr", "next": "/"})
    b.get(f"/accounts/{acme['id']}/mailboxes/new")
    r = b.post(f"/accounts/{acme['id']}/mailboxes",
               {"address": "postmaster@acme.test", "password": "long enough",
                "quota_mb": "beaucoup"})
    assert r.status_code == 422
    assert 'id="e-quota_mb">doit être un nombre entier' in r.text
    assert "est réservé au système" in r.text
    b.get(f"/accounts/{acme['id']}/domains")
    r = b.post(f"/accounts/{acme['id']}/domains", {"name": "mon domaine.org"})
    assert 'id="e-name">ne doit pas contenir d’espaces' in r.text
    b.get(f"/accounts/{acme['id']}/databases/new")
    r = b.post(f"/accounts/{acme['id']}/databases", {"name": "other_blog", "engine": "mariadb"})
    assert "doivent commencer par « acme_ »" in r.text
