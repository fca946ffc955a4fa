"""A member's site, served by a real web host that the panel configured over SSH."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from panel.hosts.models import Apply, Host
from panel.sites.models import Site
from panel.testhosts import Lab, TestHost
from provisioners.web.home import _ADD_USERS
from tests.conftest import host_key
from tests.integration.conftest import Panel, http_get, read, wait_for

pytestmark = pytest.mark.integration


def _site(panel: Panel, slug: str, domain: str, **extra: object) -> dict[str, object]:
    account = panel.world.account(slug)
    panel.world.domain(account, domain.split(".", 1)[1] if domain.count(".") > 1 else domain)
    return panel.staff.ok(
        "POST",
        "/sites",
        201,
        json={  # type: ignore[no-any-return]
            "account_id": account["id"],
            "domain": domain,
            **extra,
        },
    )


def test_site_is_served_after_reconcile_and_a_second_one_is_a_noop(
    panel: Panel, web1: TestHost
) -> None:
    host = panel.register(web1)
    site = _site(panel, "acme", "www.acme.test", aliases=["acme.test"])
    report = panel.reconcile(host["id"])
    assert report.result == "applied", report.error
    assert panel.staff.ok("GET", f"/sites/{site['id']}")["status"] == "active"
    body = wait_for(web1, "www.acme.test", 200, "www.acme.test")
    assert "Hosted by Konbit" in body
    wait_for(web1, "acme.test", 200, "www.acme.test")
    h = panel.staff.ok("GET", f"/hosts/{host['id']}")
    assert h["applied_generation"] == h["desired_generation"] and h["health"] == "ok"
    apply = panel.staff.ok("GET", f"/applies/{report.apply_id}")
    assert apply["result"] == "applied" and "server_name www.acme.test acme.test;" in apply["diff"]
    nginx_pid = read(web1, "/run/nginx.pid")
    again = panel.reconcile(host["id"])
    assert again.result == "noop"
    assert read(web1, "/run/nginx.pid") == nginx_pid
    noop = panel.staff.ok("GET", f"/applies/{again.apply_id}")
    assert noop["diff"] == "" and "nothing to do" in noop["log"]


def test_php_runs_as_the_account_user_and_cannot_read_another_account(
    panel: Panel, web1: TestHost
) -> None:
    host = panel.register(web1)
    a = _site(panel, "alpha", "alpha.test", php="8.2")
    b = _site(panel, "bravo", "bravo.test", php="8.2")
    report = panel.reconcile(host["id"])
    assert report.result == "applied", report.error
    alpha_root = "/var/www/konbit/alpha/www/alpha.test"
    bravo_root = "/var/www/konbit/bravo/www/bravo.test"
    secret = f"{alpha_root}/secret.txt"
    web1.exec(
        ["sh", "-c", 'echo top-secret > "$1" && chown alpha "$1" && chmod 640 "$1"', "x", secret],
        check=True,
    )
    probe = (
        "<?php echo posix_getpwuid(posix_geteuid())['name'], ':', "
        "var_export(@file_get_contents($_GET['f'] ?? ''), true);"
    )
    for root, user in ((alpha_root, "alpha"), (bravo_root, "bravo")):
        web1.exec(
            ["sh", "-c", 'cat > "$1/who.php" && chown "$2" "$1/who.php"', "x", root, user],
            input=probe,
            check=True,
        )
    body = wait_for(web1, "alpha.test", 200, "alpha:", f"/who.php?f={secret}")
    assert body == "alpha:'top-secret\n'"
    body = wait_for(web1, "bravo.test", 200, "bravo:", f"/who.php?f={secret}")
    assert body == "bravo:false"
    assert {a["id"], b["id"]} == {s["id"] for s in panel.staff.ok("GET", "/sites")["items"]}


def test_disable_enable_and_delete_archives_the_files(panel: Panel, web1: TestHost) -> None:
    host = panel.register(web1)
    site = _site(panel, "carol", "carol.test")
    report = panel.reconcile(host["id"])
    assert report.result == "applied", report.error
    wait_for(web1, "carol.test", 200, "carol.test")
    panel.staff.ok("PATCH", f"/sites/{site['id']}", json={"enabled": False})
    report = panel.reconcile(host["id"])
    assert report.result == "applied", report.error
    assert "suspended" in wait_for(web1, "carol.test", 503, "suspended")
    panel.staff.ok("PATCH", f"/sites/{site['id']}", json={"enabled": True})
    report = panel.reconcile(host["id"])
    assert report.result == "applied", report.error
    wait_for(web1, "carol.test", 200, "carol.test")
    panel.staff.ok("DELETE", f"/sites/{site['id']}", 202)
    report = panel.reconcile(host["id"])
    assert report.result == "applied", report.error
    assert panel.staff.get(f"/sites/{site['id']}").status_code == 404
    _, body = http_get(web1, "carol.test")
    assert "carol.test" not in body
    archive = Path(web1.path("/var/lib/konbit/archive/sites/carol"))
    kept = list(archive.iterdir())
    assert len(kept) == 1 and (kept[0] / "index.html").read_text().count("carol.test") == 2
    assert not Path(web1.path("/var/www/konbit/carol/www/carol.test")).exists()


def test_a_rejected_change_keeps_the_served_sites_and_fails_only_its_object(
    panel: Panel, web1: TestHost
) -> None:
    host = panel.register(web1)
    good = _site(panel, "delta", "delta.test")
    report = panel.reconcile(host["id"])
    assert report.result == "applied", report.error
    # Valid as a name, but longer than nginx's server_names_hash_bucket_size: nginx -t fails.
    long_name = ".".join(["a" * 60, "b" * 60, "delta.test"])
    bad = panel.staff.ok(
        "POST", "/sites", 201, json={"account_id": good["account_id"], "domain": long_name}
    )
    failed = panel.reconcile(host["id"])
    assert failed.result == "failed"
    assert failed.error and "server_names_hash" in failed.error
    wait_for(web1, "delta.test", 200, "delta.test")
    state = panel.staff.ok("GET", f"/sites/{bad['id']}")
    assert state["status"] == "failed" and "server_names_hash" in state["status_reason"]
    assert panel.staff.ok("GET", f"/sites/{good['id']}")["status"] == "active"
    # The failed site is frozen: the next reconcile applies the rest and converges.
    other = panel.staff.ok(
        "POST", "/sites", 201, json={"account_id": good["account_id"], "domain": "www.delta.test"}
    )
    report = panel.reconcile(host["id"])
    assert report.result == "applied", report.error
    wait_for(web1, "www.delta.test", 200, "www.delta.test")
    assert panel.staff.ok("GET", f"/sites/{other['id']}")["status"] == "active"
    h = panel.staff.ok("GET", f"/hosts/{host['id']}")
    assert h["applied_generation"] == h["desired_generation"]


def test_a_reload_nginx_cannot_take_is_seen_and_rolled_back(panel: Panel, web1: TestHost) -> None:
    host = panel.register(web1)
    _site(panel, "golf", "golf.test")
    assert panel.reconcile(host["id"]).result == "applied"
    before = Path(web1.path("/etc/konbit")).joinpath("live").readlink()
    # The master can open few files: nginx -t passes (it runs with its own limit), but the
    # HUP leaves the master on its old configuration.
    master = read(web1, "/run/nginx.pid").strip()
    soft = web1.exec(
        ["prlimit", "--pid", master, "--nofile", "--output=SOFT", "--noheadings"], check=True
    ).stdout.strip()
    web1.exec(["prlimit", "--pid", master, "--nofile=40:"], check=True)
    try:
        account = panel.world.account("hotel", sites=100)
        panel.world.domain(account, "hotel.test")
        for i in range(40):
            panel.staff.ok(
                "POST",
                "/sites",
                201,
                json={"account_id": account["id"], "domain": f"s{i}.hotel.test"},
            )
        report = panel.reconcile(host["id"])
        assert report.result == "failed", report
        assert "previous configuration" in (report.error or ""), report.error
        assert Path(web1.path("/etc/konbit")).joinpath("live").readlink() == before
        wait_for(web1, "golf.test", 200, "golf.test")
    finally:
        web1.exec(["prlimit", "--pid", master, f"--nofile={soft}:"], check=True)
    assert panel.reconcile(host["id"]).result == "applied"
    wait_for(web1, "s39.hotel.test", 200, "s39.hotel.test")


def test_drift_shows_in_the_plan_and_the_next_reconcile_repairs_it(
    panel: Panel, web1: TestHost
) -> None:
    host = panel.register(web1)
    site = _site(panel, "echo", "echo.test")
    report = panel.reconcile(host["id"])
    assert report.result == "applied", report.error
    assert panel.staff.ok("GET", f"/hosts/{host['id']}/plan")["noop"] is True
    vhost = f"/etc/konbit/live/nginx/site-{site['id']}.conf"
    web1.exec(["sh", "-c", 'echo "# hand edit" >> "$1"', "x", vhost], check=True)
    plan = panel.staff.ok("GET", f"/hosts/{host['id']}/plan")
    assert plan["noop"] is False
    assert plan["changes"] == [{"path": f"nginx/site-{site['id']}.conf", "kind": "change"}]
    assert "-# hand edit" in plan["diff"]
    report = panel.reconcile(host["id"])
    assert report.result == "applied", report.error
    assert "# hand edit" not in read(web1, vhost)
    assert panel.staff.ok("GET", f"/hosts/{host['id']}/plan")["noop"] is True


def test_apache2_host_serves_static_and_php_sites(panel: Panel, web2: TestHost) -> None:
    host = panel.register(web2, settings={"web_server": "apache2"})
    _site(panel, "fox", "fox.test")
    php = _site(panel, "golf", "golf.test", php="8.2")
    report = panel.reconcile(host["id"])
    assert report.result == "applied", report.error
    wait_for(web2, "fox.test", 200, "fox.test")
    root = "/var/www/konbit/golf/www/golf.test"
    web2.exec(
        [
            "sh",
            "-c",
            'printf "<?php echo get_current_user(), posix_geteuid();" > '
            '"$1/u.php" && chown golf "$1/u.php"',
            "x",
            root,
        ],
        check=True,
    )
    uid = read(web2, "/etc/passwd").split("\ngolf:")[1].split(":")[1]
    wait_for(web2, "golf.test", 200, f"golf{uid}", "/u.php")
    assert panel.staff.ok("GET", f"/sites/{php['id']}")["status"] == "active"


def test_unreachable_host_is_retried_and_converges(panel: Panel, lab: Lab, panel_key: str) -> None:
    web3 = lab.start("web3", roles=["web"], authorized_keys=[panel_key])
    web3.wait_ready(60)
    host = panel.register(web3)
    web3.stop(keep=True)
    site = _site(panel, "hotel", "hotel.test")
    report = panel.reconcile(host["id"])
    assert report.result == "failed" and "web3" in (report.error or "")
    h = panel.staff.ok("GET", f"/hosts/{host['id']}")
    assert h["health"] == "unreachable" and h["applied_generation"] < h["desired_generation"]
    assert panel.staff.ok("GET", f"/sites/{site['id']}")["status"] == "pending"
    with panel.world.db.session() as s:
        assert s.scalar(select(Host.retry_at).where(Host.id == host["id"])) is not None
    web3 = lab.start("web3", roles=["web"], authorized_keys=[panel_key], reuse=True)
    web3.wait_ready(60)
    report = panel.reconcile(host["id"])
    assert report.result == "applied", report.error
    wait_for(web3, "hotel.test", 200, "hotel.test")
    web3.stop()


def test_a_changed_host_key_is_refused_with_its_fingerprint(panel: Panel, web1: TestHost) -> None:
    host = panel.register(web1, host_key=host_key(), name="impostor")
    report = panel.reconcile(host["id"])
    assert report.result == "failed"
    assert report.error and "SHA256:" in report.error and "pinned" in report.error
    with panel.world.db.session() as s:
        assert s.scalar(select(Apply.result).where(Apply.id == report.apply_id)) == "failed"
        assert s.scalar(select(Site.id)) is None


def test_a_non_root_ssh_user_with_sudo(panel: Panel, web1: TestHost, panel_key: str) -> None:
    web1.exec(
        [
            "sh",
            "-c",
            """
        id deploy >/dev/null 2>&1 || useradd -m -s /bin/sh deploy
        install -d -m 700 -o deploy -g deploy /home/deploy/.ssh
        printf '%s\\n' "$1" > /home/deploy/.ssh/authorized_keys
        chown deploy:deploy /home/deploy/.ssh/authorized_keys
        echo 'deploy ALL=(root) NOPASSWD: ALL' > /etc/sudoers.d/deploy
        chmod 440 /etc/sudoers.d/deploy""",
            "x",
            panel_key,
        ],
        check=True,
    )
    host = panel.register(web1, ssh_user="deploy")
    _site(panel, "india", "india.test")
    report = panel.reconcile(host["id"])
    assert report.result == "applied", report.error
    wait_for(web1, "india.test", 200, "india.test")
    assert os.path.exists(web1.path("/var/www/konbit/india/www/india.test/index.html"))


def test_unix_users_are_added_under_the_shadow_lock_and_pass_pwck(
    panel: Panel, web1: TestHost
) -> None:
    host = panel.register(web1)
    slugs = ("juliet", "kilo", "lima")
    for slug in slugs:
        _site(panel, slug, f"{slug}.test", php="8.2")
    report = panel.reconcile(host["id"])
    assert report.result == "applied", report.error
    # The same script again, twice at once and beside useradd, with users it made and
    # new ones: each user exactly once, ids unique, nothing else touched.
    again = "".join(f"{u} /var/www/konbit/{u}\n" for u in (*slugs, "mike", "november"))
    web1.exec(["sh", "-c", "cat > /tmp/konbit-users; chmod 600 /tmp/konbit-users"], input=again)
    web1.exec(
        [
            "sh",
            "-c",
            'perl -e "$1" < /tmp/konbit-users & perl -e "$1" < /tmp/konbit-users & '
            "useradd -M -s /usr/sbin/nologin oscar & wait",
            "x",
            _ADD_USERS,
        ],
        check=True,
    )
    passwd = [line.split(":") for line in read(web1, "/etc/passwd").splitlines()]
    group = [line.split(":") for line in read(web1, "/etc/group").splitlines()]
    for table in (passwd, group):
        names, ids = [f[0] for f in table], [f[2] for f in table]
        assert len(names) == len(set(names)) and len(ids) == len(set(ids))
    ours = {f[0]: f for f in passwd if f[5].startswith("/var/www/konbit/")}
    assert {*slugs, "mike", "november"} <= set(ours)
    for user in slugs:
        _, _, uid, gid, _, home, shell = ours[user]
        assert uid == gid and 1000 <= int(uid) <= 60000 and shell == "/usr/sbin/nologin"
        ids = web1.exec(["sh", "-c", 'id -u "$1"; id -g "$1"; id -gn "$1"', "x", user]).stdout
        assert ids.split() == [uid, gid, user]
        assert web1.exec(["getent", "passwd", user]).stdout.strip() == ":".join(ours[user])
        assert web1.exec(["stat", "-c", "%U:%G %a", home]).stdout.split() == [
            f"{user}:www-data",
            "2750",
        ]
        assert f"\n{user}:!:" in "\n" + read(web1, "/etc/shadow")
        assert f"\n{user}:!::" in "\n" + read(web1, "/etc/gshadow")
    # pwck and grpck find nothing wrong but the base system users' missing homes.
    pwck = web1.exec(["pwck", "-r"])
    complaints = [
        line
        for line in (pwck.stdout + pwck.stderr).splitlines()
        if line != "pwck: no changes"
        and not re.fullmatch(r"user '([a-z0-9_-]+)': directory '\S+' does not exist", line)
    ]
    assert complaints == []
    missing = re.findall(r"user '([a-z0-9_-]+)': directory", pwck.stdout + pwck.stderr)
    assert not set(missing) & set(slugs)
    grpck = web1.exec(["grpck", "-r"])
    assert grpck.returncode == 0, grpck.stdout + grpck.stderr
    for f in ("passwd", "group", "shadow", "gshadow"):
        assert not os.path.exists(web1.path(f"/etc/{f}.lock"))
    # Each PHP-FPM pool runs as the user made here.
    for user in slugs:
        root = f"/var/www/konbit/{user}/www/{user}.test"
        web1.exec(
            ["sh", "-c", 'cat > "$1/u.php" && chown "$2" "$1/u.php"', "x", root, user],
            input="<?php echo posix_getpwuid(posix_geteuid())['name'], ':', posix_getegid();",
            check=True,
        )
        wait_for(web1, f"{user}.test", 200, f"{user}:{ours[user][3]}", "/u.php")
