"""The cron plugin with no host: schedules, specs, the rendered crontab and job files,
its steps, and the run records it reads back."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import ValidationError

from provisioners.api import AccountView, DesiredState, Facts, HostView, Item
from provisioners.cron import (
    CRON_D,
    LINK_FACT,
    LIVE,
    RUNS_DIR,
    WWW_ROOT,
    Cron,
    CronOperations,
    CronSpec,
    normalise_schedule,
)
from provisioners.web.common import WWW_ROOT as WEB_WWW_ROOT
from provisioners.web.common import home

ACME = AccountView(3, "acme", "active")


def _job(id: int, deleting: bool = False, **spec: Any) -> Item[CronSpec]:
    base: dict[str, Any] = {"schedule": "*/5 * * * *", "command": "php cron.php"}
    return Item(
        id, 1, "cron_job", ACME, f"job{id}", CronSpec(**{**base, **spec}), deleting, site_id=1
    )


def _state(*jobs: Item[CronSpec], failed: frozenset[tuple[str, int]] = frozenset()) -> DesiredState:
    host = HostView(1, "web1", ("web",), {})
    return DesiredState(host, objects={"cron_job": tuple(jobs)}, failed=failed)


@pytest.mark.parametrize(
    ("text", "numeric"),
    [
        ("* * * * *", "* * * * *"),
        ("*/15 9-17 * * MON-FRI", "*/15 9-17 * * 1-5"),
        ("0 3 1,15 jan,jul sun", "0 3 1,15 1,7 0"),
        ("  30   4 * * 7 ", "30 4 * * 7"),
        ("0-30/10 * * * *", "0-30/10 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@Hourly", "0 * * * *"),
        ("@annually", "0 0 1 1 *"),
    ],
)
def test_schedules_are_rendered_as_numbers(text: str, numeric: str) -> None:
    assert normalise_schedule(text) == numeric


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("* * * *", "five fields"),
        ("* * * * * *", "five fields"),
        ("60 * * * *", "out of range"),
        ("* 24 * * *", "out of range"),
        ("* * 0 * *", "out of range"),
        ("* * * 13 *", "out of range"),
        ("* * * * 8", "out of range"),
        ("5-1 * * * *", "backwards"),
        ("5/10 * * * *", "ambiguous"),
        ("*/0 * * * *", "step"),
        ("1,,2 * * * *", "list"),
        ("* * * foo *", "name"),
        ("* * * * mon;reboot", "not a value"),
        ("$(reboot) * * * *", "not a value"),
        ("@reboot", "not offered"),
        ("@often", "unknown nickname"),
        ("* * * * *\n* * * * * root id", "control"),
    ],
)
def test_hostile_or_wrong_schedules_are_refused_with_a_reason(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        normalise_schedule(text)


def _errors(**spec: Any) -> dict[str, str]:
    try:
        CronSpec.model_validate(spec)
    except ValidationError as exc:
        return {".".join(str(p) for p in e["loc"]): e["msg"] for e in exc.errors()}
    return {}


def test_spec_fields_are_checked_one_by_one() -> None:
    ok = {"schedule": "@daily", "command": "echo 100% done"}
    assert _errors(**ok) == {}
    assert CronSpec.model_validate(ok).schedule == "@daily"
    assert "command" in _errors(**{**ok, "command": "echo a\nrm -rf ~"})
    assert "command" in _errors(**{**ok, "command": "echo a\rb"})
    assert "command" in _errors(**{**ok, "command": "echo \x00"})
    assert "command" in _errors(**{**ok, "command": "echo\tx"})
    assert "command" in _errors(**{**ok, "command": "echo \u202e"})
    assert "command" in _errors(**{**ok, "command": "   "})
    assert "command" in _errors(**{**ok, "command": "x" * 1001})
    assert "schedule" in _errors(**{**ok, "schedule": "@reboot"})
    assert "output" in _errors(**{**ok, "output": "discard"})
    assert "mail_to" in _errors(**{**ok, "output": "mail"})
    assert "mail_to" in _errors(**{**ok, "output": "mail", "mail_to": "a@b\nBcc: x@y.org"})
    assert "mail_to" in _errors(**{**ok, "output": "mail", "mail_to": "-oQ/tmp@x.org"})
    assert "mail_to" in _errors(**{**ok, "mail_to": "ops@acme.org"})  # output is keep
    assert "timeout_seconds" in _errors(**{**ok, "timeout_seconds": 5})
    assert "shell" in _errors(**{**ok, "shell": "/bin/bash"})
    mailed = CronSpec.model_validate({**ok, "output": "mail", "mail_to": "Ops@Acme.org"})
    assert mailed.mail_to == "ops@acme.org"


def test_one_crontab_runs_the_wrapper_by_id_and_the_command_stays_out_of_it() -> None:
    jobs = (
        _job(7, command="date +%F > out; echo '$(x)'"),
        _job(8, enabled=False),
        _job(9, deleting=True),
        _job(10, schedule="0 4 * * sun"),
    )
    files = {f.path: f for f in Cron().render(_state(*jobs))}
    assert set(files) == {"cron/konbit", "cron/run", "cron/jobs/7", "cron/jobs/8", "cron/jobs/10"}
    tab = files["cron/konbit"].content.decode()
    lines = [ln for ln in tab.splitlines() if ln and not ln.startswith("#")]
    assert lines == [
        "SHELL=/bin/sh",
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        'MAILTO=""',
        f"*/5 * * * * root {LIVE}/cron/run 7",
        f"0 4 * * 0 root {LIVE}/cron/run 10",
    ]
    assert "%" not in tab and "date" not in tab
    assert files["cron/konbit"].mode == 0o644 and files["cron/run"].mode == 0o755
    assert files["cron/jobs/7"].mode == 0o600  # the command is the member's business
    assert files["cron/jobs/7"].content.decode().splitlines() == [
        "acme",
        home("acme"),
        "3600",
        "keep",
        "",
        "job7",
        "date +%F > out; echo '$(x)'",
    ]


def test_a_failed_job_is_left_out_of_the_crontab_and_no_jobs_render_nothing() -> None:
    state = _state(_job(7), _job(8), failed=frozenset({("cron_job", 7)}))
    tab = next(f for f in Cron().render(state) if f.path == "cron/konbit").content.decode()
    assert "cron/run 8" in tab and "cron/run 7" not in tab
    assert Cron().render(_state()) == []
    assert Cron().render(_state(_job(7, deleting=True))) == []  # the last job goes
    assert Cron().object_of("cron/jobs/12") == ("cron_job", 12)
    assert Cron().object_of("cron/konbit") is None
    assert Cron().blame("cron job 12: no unix user acme on this host") == {("cron_job", 12)}


def test_steps_link_cron_d_once_and_drop_the_records_of_deleted_jobs() -> None:
    cron = Cron()
    fresh = cron.steps(_state(_job(7)), Facts(), set())
    assert [s.argv for s in fresh] == [
        ("install", "-d", "-m", "0700", RUNS_DIR),
        ("ln", "-sfn", "--", f"{LIVE}/cron/konbit", CRON_D),
    ]
    assert fresh[1].phase == "after"
    seen = Facts.of({LINK_FACT: f"link {LIVE}/cron/konbit\nruns\njob 7\njob 9\n"})
    assert cron.steps(_state(_job(7)), seen, set()) != []
    (gone,) = cron.steps(_state(_job(7), _job(9, deleting=True)), seen, set())
    assert gone.argv == ("rm", "-rf", "--", f"{RUNS_DIR}/9") and gone.phase == "after"
    unlink, records = cron.steps(_state(_job(7, deleting=True)), seen, set())
    assert unlink.argv == ("rm", "-f", "--", CRON_D)  # the last job is going: the link too
    assert records.argv[-2:] == (f"{RUNS_DIR}/7", f"{RUNS_DIR}/9")
    assert records.object_ids == (("cron_job", 7),)
    last = cron.steps(_state(), seen, set())
    assert [s.argv[0] for s in last] == ["rm", "rm"]  # the link, then the records
    assert last[0].argv == ("rm", "-f", "--", CRON_D)


def test_the_plugin_knows_where_homes_are_as_the_web_plugin_does() -> None:
    assert WWW_ROOT == WEB_WWW_ROOT


def test_run_records_are_parsed_from_the_hosts_text() -> None:
    out = base64.b64encode("hello\nwörld\n".encode()).decode()
    text = (
        "run 1700000000000-12 1700000000000 1700000001500 3 now 13\n"
        "note stopped after 10 seconds (time limit)\n"
        f"output {out}\nend\n"
        "run garbage\noutput eA==\nend\n"
        "run 1699999999000-9 1699999999000 1699999999100 0 cron 0\noutput \nend\n"
    )
    runs = CronOperations().parse_runs(text)
    assert [(r["id"], r["exit_code"], r["how"]) for r in runs] == [
        ("1700000000000-12", 3, "now"),
        ("1699999999000-9", 0, "cron"),
    ]
    assert runs[0]["output"] == "hello\nwörld\n"
    assert runs[0]["notes"] == ["stopped after 10 seconds (time limit)"]
    assert runs[1]["output"] == ""


def test_operations_pass_the_job_id_as_an_argument_not_as_code() -> None:
    ops = CronOperations()
    run = ops.run_now(12)
    assert run.argv[:2] == ("sh", "-c") and run.argv[3:] == ("konbit", "12", "65536")
    assert ops.runs(12, 500).argv[3:] == ("konbit", "12", "100")
