"""The lifecycle bench's tasks: each one started through the API and run, beside its floor."""

from __future__ import annotations

from dataclasses import dataclass, field

from common import log
from lifecycle_floor import (
    FLOOR_DB,
    FLOOR_DIR,
    PREP_DB,
    PREP_DIR,
    Leg,
    dump_gz,
    load_gz,
    store,
    tar_out,
    untar_into,
)
from lifecycle_world import Panel, Run, World, ensure_registered

TASKS = ("backup", "restore", "clone", "migrate", "migrate-db", "account")


LABELS = {
    "backup": "backup -> bk1",
    "restore": "restore in place",
    "clone": "clone (web1, new db)",
    "migrate": "migrate site web1->web2",
    "migrate-db": "migrate db db1->db2",
    "account": "migrate account ->web2+db2",
}


# ----------------------------------------------------------------------------- the tasks


@dataclass
class Case:
    name: str
    data: int  # bytes of data (files + uncompressed dumps)
    floors: list[Run] = field(default_factory=list)
    tasks: list[Run] = field(default_factory=list)


def case_data(w: World, name: str) -> int:
    site = w.files_bytes["bench.test"]
    if name in ("backup", "restore", "clone"):
        return site + w.sql_bytes
    if name == "migrate":
        return site
    if name == "migrate-db":
        return w.sql_bytes
    return w.files_bytes["move.test"] + w.files_bytes["move2.test"] + w.sql_bytes


def floor_legs(w: World, name: str) -> list[Leg]:
    web1, db1 = w.h("web1"), w.h("db1")
    root = w.roots["bench.test"]
    if name == "backup":
        bk1 = w.h("bk1")
        return [
            Leg(web1, tar_out(root), bk1, store(f"{FLOOR_DIR}/files.tar.gz"), PREP_DIR),
            Leg(db1, dump_gz("bench_app"), bk1, store(f"{FLOOR_DIR}/db.sql.gz")),
        ]
    if name == "restore":
        bk1 = w.h("bk1")
        return [
            Leg(bk1, ["cat", f"{FLOOR_DIR}/files.tar.gz"], web1,
                untar_into(f"{FLOOR_DIR}/files-r"), PREP_DIR),
            Leg(bk1, ["cat", f"{FLOOR_DIR}/db.sql.gz"], db1, load_gz(FLOOR_DB), PREP_DB),
        ]  # fmt: skip
    if name == "clone":
        return [
            Leg(web1, tar_out(root, False), web1, untar_into(f"{FLOOR_DIR}/files-c", False),
                PREP_DIR),
            Leg(db1, dump_gz("bench_app"), db1, load_gz(FLOOR_DB), PREP_DB),
        ]
    web2, db2 = w.h("web2") if "web2" in w.hosts else None, w.h("db2") if "db2" in w.hosts else None
    if name == "migrate":
        assert web2 is not None
        return [
            Leg(web1, tar_out(root, False), web2, untar_into(f"{FLOOR_DIR}/files-m", False),
                PREP_DIR)
        ]  # fmt: skip
    if name == "migrate-db":
        assert db2 is not None
        return [Leg(db1, dump_gz("bench_app"), db2, load_gz(FLOOR_DB), PREP_DB)]
    assert web2 is not None and db2 is not None
    return [
        Leg(web1, tar_out(w.roots["move.test"], False), web2,
            untar_into(f"{FLOOR_DIR}/files-a", False), PREP_DIR),
        Leg(web1, tar_out(w.roots["move2.test"], False), web2,
            untar_into(f"{FLOOR_DIR}/files-b", False)),
        Leg(db1, dump_gz("move_app"), db2, load_gz(FLOOR_DB), PREP_DB),
    ]  # fmt: skip


def run_case(panel: Panel, w: World, name: str) -> Run:
    """One timed task; what it moved is moved back after (untimed) so the next run
    starts from the same place."""
    site = w.sites["bench.test"]
    if name == "backup":
        run, done = panel.run("POST", f"/sites/{site['id']}/backups")
        w.backup_id = int(done["result"].get("backup_id") or 0)
        return run
    if name == "restore":
        return panel.run("POST", f"/sites/{site['id']}/restore", backup_id=w.backup_id)[0]
    if name == "clone":
        w.clones += 1
        domain = f"bench-clone{w.clones}.test"
        panel.call("POST", "/domains", 201, account_id=site["account_id"], name=domain)
        return panel.run(
            "POST", f"/sites/{site['id']}/clone", domain=domain, databases=["bench_app"]
        )[0]
    if name == "migrate":
        web1, web2 = ensure_registered(panel, w, "web1"), ensure_registered(panel, w, "web2")
        run, _ = panel.run("POST", f"/sites/{site['id']}/migrate", host_id=web2)
        back, _ = panel.run("POST", f"/sites/{site['id']}/migrate", host_id=web1)
        log(f"  (moved back web2 -> web1 in {back.seconds:.1f}s {back.error})")
        return run
    db = w.dbs["bench_app"]
    if name == "migrate-db":
        db1, db2 = ensure_registered(panel, w, "db1"), ensure_registered(panel, w, "db2")
        run, _ = panel.run("POST", f"/databases/{db['id']}/migrate", host_id=db2)
        back, _ = panel.run("POST", f"/databases/{db['id']}/migrate", host_id=db1)
        log(f"  (moved back db2 -> db1 in {back.seconds:.1f}s {back.error})")
        return run
    account = w.accounts["move"]
    web1, web2 = ensure_registered(panel, w, "web1"), ensure_registered(panel, w, "web2")
    db1, db2 = ensure_registered(panel, w, "db1"), ensure_registered(panel, w, "db2")
    path = f"/accounts/{account['id']}/migrate"
    run, _ = panel.run("POST", path, web_host_id=web2, db_host_id=db2)
    back, _ = panel.run("POST", path, web_host_id=web1, db_host_id=db1)
    log(f"  (moved back to web1 + db1 in {back.seconds:.1f}s {back.error})")
    return run


def median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
