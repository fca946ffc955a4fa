"""The lifecycle bench's floors and components: the same bytes between the same hosts
through the same relay with plain commands, and each piece (tar, gzip, zstd, dump, load,
the relay through ``pipe()`` or two OpenSSH clients) timed alone."""

from __future__ import annotations

import resource
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common import log, metered
from lifecycle_world import Panel, Run, World, sh

from panel.tasks.streams import pipe
from panel.testhosts import TestHost
from provisioners.transport import Connection

FLOOR_DIR = "/var/tmp/konbit-floor"


FLOOR_DB = "floor_copy"


# ----------------------------------------------------------------------------- floors


@dataclass(frozen=True)
class Leg:
    """One pipe of a floor: argv on ``src`` into argv on ``dst``; ``prep`` runs on
    ``dst`` first, untimed."""

    src: TestHost
    src_argv: list[str]
    dst: TestHost
    dst_argv: list[str]
    prep: str = ""


def tar_out(root: str, gz: bool = True) -> list[str]:
    """gzip'd for the store; plain host to host, as the tasks do."""
    return ["tar", "-C", root, "-czf" if gz else "-cf", "-", "."]


def untar_into(path: str, gz: bool = True) -> list[str]:
    x = "-xzf" if gz else "-xf"
    return ["sh", "-c", f'mkdir -p "$1" && tar {x} - -C "$1"', "floor", path]


def store(path: str) -> list[str]:
    return ["sh", "-c", 'cat > "$1"', "floor", path]


def dump_gz(name: str) -> list[str]:
    return ["sh", "-c", 'mariadb-dump --single-transaction -- "$1" | gzip', "floor", name]


def load_gz(name: str) -> list[str]:
    return ["sh", "-c", 'gunzip | mariadb --batch -- "$1"', "floor", name]


PREP_DIR = f"rm -rf {FLOOR_DIR}/files-* && mkdir -p {FLOOR_DIR}"


PREP_DB = (
    f"mkdir -p {FLOOR_DIR} && mariadb -e "
    f"'DROP DATABASE IF EXISTS {FLOOR_DB}; CREATE DATABASE {FLOOR_DB}'"
)


def run_floor(panel: Panel, legs: Sequence[Leg]) -> Run:
    for leg in legs:
        if leg.prep:
            sh(leg.dst, leg.prep)
    wire, piped = 0, 0.0
    with metered(panel.pids()) as cpu:
        for leg in legs:
            with (
                Connection(panel.target(leg.src), panel.key) as a,
                Connection(panel.target(leg.dst), panel.key) as b,
            ):
                got = pipe(a, leg.src_argv, b, leg.dst_argv, "floor")
            wire += got.bytes
            piped += got.seconds
    return Run(cpu, wire, piped)


# ----------------------------------------------------------------------------- components


@dataclass
class Component:
    name: str
    data: int
    run: Run
    note: str = ""


def local(panel: Panel, host: TestHost, script: str, *args: str) -> Run:
    """A command on one host over one SSH connection, nothing streamed back."""
    with Connection(panel.target(host), panel.key) as conn:
        conn.run(["true"])  # the handshake out of the figure
        with metered(panel.pids()) as cpu:
            conn.run(["sh", "-c", script, "bench", *args], timeout=3600, check=True)
    return Run(cpu)


def openssh_relay(
    panel: Panel, work: Path, src: TestHost, src_cmd: str, dst: TestHost, dst_cmd: str
) -> Run:
    """The same relay with two OpenSSH clients on this machine (C, no Python)."""
    known = work / "known_hosts"
    known.write_text("".join(f"{h.address} {h.host_key}\n" for h in (src, dst)))

    def ssh(host: TestHost, cmd: str) -> list[str]:
        return [
            "ssh", "-i", str(panel.settings.ssh_key_path), "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
            f"root@{host.address}", cmd,
        ]  # fmt: skip

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with metered(panel.pids()) as cpu:
        a = subprocess.Popen(ssh(src, src_cmd), stdout=subprocess.PIPE)
        b = subprocess.Popen(ssh(dst, dst_cmd), stdin=a.stdout)
        assert a.stdout is not None
        a.stdout.close()
        if b.wait() != 0 or a.wait() != 0:
            raise RuntimeError(f"openssh relay: {a.returncode} {b.returncode}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu.panel = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Run(cpu)


def zstd_on(hosts: Sequence[TestHost]) -> str:
    """zstd on the hosts, for the prototypes: the test image has none, so this machine's
    binary (Debian 12, as the hosts; it needs only libc, zlib, lzma, lz4) is copied into
    each one's /usr/local/bin, untimed.  Returns a note, empty when there is no zstd."""
    here = shutil.which("zstd")
    note = ""
    for h in hosts:
        if h.exec(["sh", "-c", "command -v zstd"]).returncode == 0:
            continue
        if here is None:
            return ""
        dest = h.path("/usr/local/bin/zstd")
        shutil.copyfile(here, dest)
        dest.chmod(0o755)
        if h.exec(["zstd", "--version"]).returncode != 0:
            return ""
        note = "zstd copied into the hosts"
    return note


def components(panel: Panel, w: World, work: Path) -> list[Component]:
    web1, db1 = w.h("web1"), w.h("db1")
    dst = w.hosts.get("bk1") or w.hosts.get("web2") or db1  # the raw relay's receiver
    fdst = w.hosts.get("web2") or w.hosts.get("bk1") or web1  # files, host to host
    ddst = w.hosts.get("db2") or db1  # a database, host to host
    root = w.roots["bench.test"]
    files, big = w.files_bytes["bench.test"], int(sh(web1, 'stat -c %s "$1"', w.big))
    tmp = f"{FLOOR_DIR}/c"
    sh(web1, f"rm -rf {tmp} && mkdir -p {tmp}")
    sh(db1, PREP_DB)
    out: list[Component] = []

    def add(name: str, data: int, run: Run, note: str = "") -> None:
        out.append(Component(name, data, run, note))
        log(f"  {name}: {run.seconds:.2f}s")

    zstd = zstd_on(list({h.name: h for h in (web1, db1, fdst, ddst)}.values()))
    add("tar (no gzip) web1", files,
        local(panel, web1, 'tar -C "$1" -cf - . | cat >/dev/null', root))  # fmt: skip
    add("tar | gzip -6 web1 (tar czf)", files,
        local(panel, web1, 'tar -C "$1" -czf "$2" .', root, f"{tmp}/f.tar.gz"))  # fmt: skip
    add("tar | gzip -1 web1", files,
        local(panel, web1, 'tar -C "$1" -cf - . | gzip -1 >/dev/null', root))  # fmt: skip
    has_zstd = all(
        h.exec(["sh", "-c", "command -v zstd"]).returncode == 0 for h in (web1, fdst, db1, ddst)
    )
    if has_zstd:
        run = local(panel, web1, 'tar -C "$1" -cf - . | zstd -q -3 >/dev/null', root)
        add("tar | zstd -3 web1", files, run, zstd)
    add("untar (tar xzf) web1", files,
        local(panel, web1, 'mkdir -p "$2" && tar -xzf "$1" -C "$2"', f"{tmp}/f.tar.gz",
              f"{tmp}/x"))  # fmt: skip
    with Connection(panel.target(web1), panel.key) as a:
        transport = a._client.get_transport() if a._client else None
        cipher = f"{transport.local_cipher}/{transport.local_mac}" if transport else "?"
    relay = "cat big.bin -> cat >/dev/null"
    run = run_floor(panel, [Leg(web1, ["cat", w.big], dst, ["sh", "-c", "cat >/dev/null"])])
    add(f"relay web1->{dst.name}, pipe() (paramiko)", big, run, f"{relay}; {cipher}")
    run = openssh_relay(panel, work, web1, f"cat {shlex.quote(w.big)}", dst, "cat >/dev/null")
    add(f"relay web1->{dst.name}, 2 OpenSSH clients", big, run, relay)
    # Prototypes: the files of a move with no compression, or zstd, through pipe().
    raw = ["sh", "-c", 'mkdir -p "$1" && tar -xf - -C "$1"', "p", f"{FLOOR_DIR}/files-p"]
    run = run_floor(panel, [Leg(web1, ["tar", "-C", root, "-cf", "-", "."], fdst, raw, PREP_DIR)])
    add(f"files web1->{fdst.name}: tar -> pipe() -> tar x", files, run, "no compression")
    if has_zstd:
        src = ["sh", "-c", 'tar -C "$1" -cf - . | zstd -q -3', "p", root]
        unz = ["sh", "-c", 'mkdir -p "$1" && zstd -q -d | tar -xf - -C "$1"', "p",
               f"{FLOOR_DIR}/files-p"]  # fmt: skip
        run = run_floor(panel, [Leg(web1, src, fdst, unz, PREP_DIR)])
        add(f"files web1->{fdst.name}: tar | zstd -3 -> pipe()", files, run, "-> zstd -d | tar x")
    sql = w.sql_bytes
    dump = "mariadb-dump --single-transaction bench_app"
    add("mariadb-dump db1", sql, local(panel, db1, f"{dump} | cat >/dev/null"))
    add("mariadb-dump | gzip db1", sql, local(panel, db1, f"{dump} | gzip > {FLOOR_DIR}/d.gz"))
    add("gunzip | mariadb (load) db1", sql,
        local(panel, db1, f"gunzip < {FLOOR_DIR}/d.gz | mariadb {FLOOR_DB}"))  # fmt: skip
    load = ["sh", "-c", f"mariadb --batch {FLOOR_DB}"]
    run = run_floor(panel, [Leg(db1, ["sh", "-c", dump], ddst, load, PREP_DB)])
    add(f"db db1->{ddst.name}: dump -> pipe() -> mariadb", sql, run, "no compression")
    if has_zstd:
        zload = ["sh", "-c", f"zstd -q -d | mariadb --batch {FLOOR_DB}"]
        run = run_floor(panel, [Leg(db1, ["sh", "-c", f"{dump} | zstd -q -3"], ddst, zload,
                                    PREP_DB)])  # fmt: skip
        add(f"db db1->{ddst.name}: dump | zstd -3 -> pipe()", sql, run, "-> zstd -d | mariadb")
    sh(web1, f"rm -rf {tmp}")
    sh(fdst, f"rm -rf {FLOOR_DIR}/files-p")
    sh(db1, f"rm -f {FLOOR_DIR}/d.gz; mariadb -e 'DROP DATABASE IF EXISTS {FLOOR_DB}'")
    return out
