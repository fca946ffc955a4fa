"""Clones of a site: its files and databases into a new site, host to host."""

from __future__ import annotations

from panel.sites.models import Site
from panel.tasks.run.job import Job, load_site, rewrite_config, wait_databases, wait_site
from panel.tasks.run.restore import Load, copy_databases, databases_by_name
from panel.tasks.streams import pipe
from provisioners.api.operations import Command
from provisioners.transport import Connection


def do_clone(job: Job) -> None:
    """Files and databases of a site into a new site (made by the API with its new
    databases and users): straight from host to host through the panel; the copy's
    config files name its own databases and users."""
    p = job.params()
    with job.db.session() as session:
        src, account = load_site(session, p["site_id"])
        dst, _ = load_site(session, p["target_site_id"])
        renames: dict[str, str] = p["database_names"]
        rows = databases_by_name(session, account.id)
        loads = [
            Load(a, b, rows[a].engine, rows[b].host_id, rows[b].id)
            for a, b in renames.items()
            if a in rows and b in rows
        ]
        src_hosts = {a: rows[a].host_id for a in renames if a in rows}
        src_root = job.site_root(account.slug, src.document_root)
        dst_root = job.site_root(account.slug, dst.document_root)
        src_web, dst_id, dst_domain, slug = src.host_id, dst.id, dst.domain, account.slug
    job.say(f"cloning {src_root} into {dst_domain}", 5)
    wait_site(job, dst_id, dst_domain)
    wait_databases(job, [x.db_id for x in loads])
    files = job.files()
    with job.host(src_web) as a:
        with job.db.session() as session:
            dst_web = session.get_one(Site, dst_id).host_id
        with job.host(dst_web) as b:
            got = pipe(
                a, files.tar_out(src_root, gz=False).argv,
                b, files.put_files(
                    dst_root, slug, f"clone-{job.task_id}", archive=None, gz=False
                ).argv,
                f"files into {dst_domain}",
            )  # fmt: skip
            job.say(f"files: {got.bytes} bytes in {got.seconds:.1f}s", 50)
            rewrite_config(job, b, dst_root, slug, {**renames, **(p.get("user_names") or {})})
    with job.hosts() as sources:

        def source(name: str, engine: str) -> tuple[Connection, Command]:
            return sources(src_hosts[name]), job.engine(engine).dump(name)

        copy_databases(job, source, loads, slug, 50, 45)
    job.result(site_id=dst_id)
