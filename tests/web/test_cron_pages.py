"""A cron job's pages beyond its generic form: its last runs (read from its web host:
none answers here, so the page says so; the runs themselves come from a stand-in of the
service), "run now" queueing a task and showing its page, viewers, French, and another
account's job as a 404. The real host's runs are ``tests/integration/test_cron.py``'s."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest

from panel.cron import service
from provisioners.api import TransportError
from tests.web.conftest import WebWorld

SPEC = {"schedule": "*/5 * * * *", "command": "php bin/cron.php"}


def _job(web: WebWorld, slug: str, **spec: Any) -> dict[str, Any]:
    world = web.world
    account = world.account(slug)
    world.domain(account, f"{slug}.test")
    site = world.staff.ok(
        "POST", "/sites", 201, json={"account_id": account["id"], "domain": f"{slug}.test"}
    )
    body = {"account_id": account["id"], "site_id": site["id"], "name": f"{slug}-nightly"}
    job: dict[str, Any] = world.staff.ok(
        "POST", "/objects/cron_job", 201, json={**body, "spec": {**SPEC, **spec}}
    )
    return {"account": account, "site": site, **job}


@pytest.fixture
def acme(web: WebWorld) -> dict[str, Any]:
    web.world.host(["web"])
    return _job(web, "acme")


@pytest.fixture
def no_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """The web host does not answer (there is none at its address)."""

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise TransportError("connection refused")

    monkeypatch.setattr(service, "connect", unreachable)


def _browser(web: WebWorld, job: dict[str, Any], role: str = "owner") -> Any:
    web.member(job["account"], f"{role}@acme.test", role)
    b = web.browser()
    b.login(f"{role}@acme.test")
    return b


@pytest.mark.usefixtures("no_host")
def test_the_jobs_page_links_its_runs_and_run_now_queues_a_task(
    web: WebWorld, acme: dict[str, Any]
) -> None:
    b = _browser(web, acme)
    r = b.get(f"/objects/cron_job/{acme['id']}")
    assert r.status_code == 200
    assert f'<a href="/objects/cron_job/{acme["id"]}/runs">Last runs</a>' in r.text
    assert f'<form method="post" action="/objects/cron_job/{acme["id"]}/run">' in r.text
    # Other kinds' pages get no such links.
    assert "/runs" not in b.get(f"/accounts/{acme['account']['id']}/objects/cron_job").text

    # The host does not answer: the page says so, with the service's reason, no stack.
    r = b.get(f"/objects/cron_job/{acme['id']}/runs")
    assert r.status_code == 200
    assert "<title>Last runs of acme-nightly · Konbit</title>" in r.text
    assert "The last runs cannot be read from the web host now." in r.text
    assert "h1 did not answer (connection refused); try again later." in r.text
    assert "Traceback" not in r.text and "No run yet." not in r.text
    assert f'action="/objects/cron_job/{acme["id"]}/run"' in r.text

    # Run now is a form with the session's token, and shows the task it queued.
    assert b.post(f"/objects/cron_job/{acme['id']}/run", csrf=False).status_code == 403
    r = b.post(f"/objects/cron_job/{acme['id']}/run")
    assert r.status_code == 303, r.text
    tasks = web.world.staff.ok("GET", "/tasks", params={"kind": "cron-run"})["items"]
    assert [(t["status"], t["params"]["cron_job_id"]) for t in tasks] == [("queued", acme["id"])]
    assert r.headers["location"] == f"/tasks/{tasks[0]['id']}"
    r = b.get(r.headers["location"])
    assert r.status_code == 200 and "cron-run" in r.text

    # One at a time: a second is refused, and the runs page says why.
    r = b.post(f"/objects/cron_job/{acme['id']}/run")
    assert r.status_code == 303 and r.headers["location"] == f"/objects/cron_job/{acme['id']}/runs"
    r = b.get(r.headers["location"])
    assert f"Task {tasks[0]['id']} is already running this job" in r.text
    assert len(web.world.staff.ok("GET", "/tasks", params={"kind": "cron-run"})["items"]) == 1


def test_the_runs_are_listed_newest_first_with_their_output(
    web: WebWorld, acme: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(n: int, how: str, code: int, output: str, notes: list[str]) -> dict[str, Any]:
        started = 1_780_000_000_000 + n * 300_000
        return service.with_times(
            {
                "id": f"{started}-{n}",
                "how": how,
                "started_ms": started,
                "ended_ms": started + 1500,
                "exit_code": code,
                "output_bytes": len(output.encode()),
                "notes": notes,
                "output": output,
            }
        )

    runs = [
        run(2, "now", 1, "<b>oops</b>\nline two\n", ["time limit reached"]),
        run(1, "cron", 0, "", []),
    ]
    asked: list[int] = []

    def read_runs(*args: Any) -> list[dict[str, Any]]:
        asked.append(args[-1])
        return runs

    monkeypatch.setattr(service, "read_runs", read_runs)
    b = _browser(web, acme)
    r = b.get(f"/objects/cron_job/{acme['id']}/runs")
    assert r.status_code == 200 and asked == [10]
    rows = re.findall(r"<tr>\s*<td><a href=\"#run-([^\"]+)\">", r.text)
    assert rows == [runs[0]["id"], runs[1]["id"]]  # as the host gave them: newest first
    assert "<td>1.5 s</td>" in r.text and "<td>run now</td>" in r.text
    assert "<td>on schedule</td>" in r.text and "time limit reached" in r.text
    assert "<pre>&lt;b&gt;oops&lt;/b&gt;\nline two\n</pre>" in r.text  # escaped, as typed
    assert "No output." in r.text


@pytest.mark.usefixtures("no_host")
def test_a_viewer_sees_the_runs_but_cannot_run_the_job(web: WebWorld, acme: dict[str, Any]) -> None:
    b = _browser(web, acme, role="viewer")
    r = b.get(f"/objects/cron_job/{acme['id']}")
    assert r.status_code == 200 and f"/objects/cron_job/{acme['id']}/runs" in r.text
    assert '/run"' not in r.text and "Run now" not in r.text
    r = b.get(f"/objects/cron_job/{acme['id']}/runs")
    assert r.status_code == 200 and "did not answer" in r.text
    assert "Run now" not in r.text and '/run"' not in r.text
    assert b.post(f"/objects/cron_job/{acme['id']}/run").status_code == 403
    assert web.world.staff.ok("GET", "/tasks", params={"kind": "cron-run"})["items"] == []


@pytest.mark.usefixtures("no_host")
def test_another_accounts_job_answers_404(web: WebWorld, acme: dict[str, Any]) -> None:
    theirs = _job(web, "beta", command="echo private-stuff")
    b = _browser(web, acme)
    for path in (f"/objects/cron_job/{theirs['id']}/runs", "/objects/cron_job/999999/runs"):
        r = b.get(path)
        assert r.status_code == 404, path
        assert "private-stuff" not in r.text and "beta-nightly" not in r.text
    assert b.post(f"/objects/cron_job/{theirs['id']}/run").status_code == 404
    assert web.world.staff.ok("GET", "/tasks", params={"kind": "cron-run"})["items"] == []
    # An object of another kind is no cron job either.
    web.world.host(["toy"])
    note = web.world.staff.ok(
        "POST",
        "/objects/toy_note",
        201,
        json={"account_id": acme["account"]["id"], "name": "n1", "spec": {"text": "hi"}},
    )
    assert b.get(f"/objects/cron_job/{note['id']}/runs").status_code == 404
    assert b.post(f"/objects/cron_job/{note['id']}/run").status_code == 404
    assert "Last runs" not in b.get(f"/objects/toy_note/{note['id']}").text


@pytest.mark.usefixtures("no_host")
def test_the_pages_speak_french(web: WebWorld, acme: dict[str, Any]) -> None:
    b = _browser(web, acme)
    b.post("/language", {"lang": "fr", "next": "/"})
    r = b.get(f"/objects/cron_job/{acme['id']}")
    assert r.headers["content-language"] == "fr"
    assert ">Dernières exécutions</a>" in r.text and ">Exécuter maintenant</button>" in r.text
    r = b.get(f"/objects/cron_job/{acme['id']}/runs")
    assert "<title>Dernières exécutions de acme-nightly · Konbit</title>" in r.text
    text = html.unescape(r.text)
    assert "ne peuvent pas être lues sur le serveur web pour l’instant" in text
    assert "h1 did not answer" in text  # the host's own words, as the service says them
