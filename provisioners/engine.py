"""Reconcile one host: facts, plan, stage, validate, swap, reload, steps.

The host side is a tree of generations under ``/etc/konbit/gen/<label>`` and one symlink
``/etc/konbit/live``.  A new generation is a hard-link copy of the live one with only the
changed files replaced (GNU tar unlinks before it extracts, so the live files are never
touched).  The services' own checkers run in a private mount namespace where the new
generation is bind-mounted over the live one: the real main configuration is validated
with the new files before anything changes.  The swap is one ``rename`` of the symlink;
each service is reloaded at most once; a failed reload flips the symlink back.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import re
import secrets
import shlex
import tarfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from provisioners.api import (
    KONBIT_ROOT,
    LIVE,
    DesiredState,
    Fact,
    Facts,
    Failure,
    ManagedFile,
    ObjectRef,
    Provisioner,
    Result,
    Runner,
    Step,
)

DIFF_LIMIT = 200_000

_FACTS = r"""
set -u
echo "== manifest"
if [ -d /etc/konbit/live/ ]; then
    cd /etc/konbit/live/ && find . -type f -print0 | xargs -0r sha256sum
    cd /
fi
echo "== users"
getent passwd | cut -d: -f1,3
echo "== reload-pending"
if [ -e /etc/konbit/reload-pending ]; then echo pending; fi
echo "== bootstrap"
for f in "$@"; do if [ -e "$f" ]; then printf '%s\n' "$f"; fi; done
"""

_INIT_TREE = r"""
set -eu
if [ ! -e /etc/konbit/live ]; then
    mkdir -p /etc/konbit/gen/0
    chmod 0755 /etc/konbit
    ln -sfn gen/0 /etc/konbit/live
fi
"""

_STAGE = (
    _INIT_TREE
    + r"""
new="/etc/konbit/gen/$1"
if [ "$new" = "$(readlink -f /etc/konbit/live || true)" ]; then
    echo "generation $1 is the live one; refusing to overwrite it" >&2; exit 1
fi
rm -rf -- "$new"
mkdir -p /etc/konbit/gen
if [ -d /etc/konbit/live/ ]; then
    cp -al -- "$(readlink -f /etc/konbit/live)" "$new"
else
    mkdir -p -- "$new"
fi
# Owner root, group by name (a group the host lacks falls back to gid 0).
tar -x -C "$new" --same-owner -f -
if [ -f "$new/.konbit-remove" ]; then
    (cd "$new" && xargs -0r rm -f -- < .konbit-remove)
    rm -f -- "$new/.konbit-remove"
    find "$new" -mindepth 1 -type d -empty -delete
fi
"""
)

_VALIDATE = r"""
mount --bind "$1" "$(readlink -f /etc/konbit/live)" || exit 97
shift
exec "$@"
"""

_SWAP = r"""
set -eu
previous="$(readlink /etc/konbit/live || true)"
# Until every service has reloaded, the next reconcile must reload even with no change.
printf '%s\n' "$1" > /etc/konbit/reload-pending
ln -sfn "gen/$1" /etc/konbit/live.new
mv -T /etc/konbit/live.new /etc/konbit/live
printf '%s\n' "$previous"
"""

_PRUNE = r"""
set -eu
rm -f /etc/konbit/reload-pending
keep_a="$(readlink -f /etc/konbit/live)"; keep_b="/etc/konbit/gen/$1"
for g in /etc/konbit/gen/*; do
    [ "$g" = "$keep_a" ] || [ "$g" = "$keep_b" ] || rm -rf -- "$g"
done
"""

_WRITE = (
    'set -eu; mkdir -p -- "$(dirname "$1")"; cat > "$1.konbit-new"; mv -f -- "$1.konbit-new" "$1"'
)


@dataclass(frozen=True)
class Change:
    path: str
    kind: str  # "add", "change" or "remove"
    new: bytes | None = None
    mode: int = 0o644
    group: str = "root"


@dataclass
class Plan:
    """What a reconcile would do now; ``is_noop`` means no upload, no reload, no step."""

    facts: Facts
    files: dict[str, ManagedFile]
    changes: list[Change]
    steps: list[Step]
    bootstrap: list[tuple[str, bytes]]
    old: dict[str, bytes] = field(default_factory=dict)
    reload_pending: bool = False  # a previous reconcile swapped but died before reloading

    @property
    def is_noop(self) -> bool:
        return not (self.changes or self.steps or self.bootstrap or self.reload_pending)

    @property
    def changed_paths(self) -> set[str]:
        return {c.path for c in self.changes}

    def diff(self) -> str:
        """A unified diff of the tree, then the steps: what a human reviews."""
        out: list[str] = []
        size = 0
        for change in self.changes:
            old = self.old.get(change.path, b"").decode("utf-8", "replace").splitlines(True)
            new = (change.new or b"").decode("utf-8", "replace").splitlines(True)
            a = f"a/{change.path}" if change.kind != "add" else "/dev/null"
            b = f"b/{change.path}" if change.kind != "remove" else "/dev/null"
            chunk = "".join(difflib.unified_diff(old, new, a, b))
            if change.kind == "change" and not chunk:
                chunk = f"~ {change.path} (content differs only in bytes not shown)\n"
            size += len(chunk)
            if size > DIFF_LIMIT:
                out.append(
                    f"... {len(self.changes)} files change in all; diff cut at "
                    f"{DIFF_LIMIT} characters\n"
                )
                break
            out.append(chunk)
        for path, _ in self.bootstrap:
            out.append(f"+ bootstrap {path}\n")
        for step in self.steps:
            out.append(f"$ {step.description} [{step.phase}]\n")
        return "".join(out)

    def summary(self) -> str:
        kinds = {
            k: sum(1 for c in self.changes if c.kind == k) for k in ("add", "change", "remove")
        }
        return (
            f"{kinds['add']} added, {kinds['change']} changed, {kinds['remove']} removed, "
            f"{len(self.steps)} steps"
        )


@dataclass
class Outcome:
    """How a reconcile ended; failures name their phase and, where known, the objects."""

    result: str  # "applied", "noop" or "failed"
    plan: Plan | None
    log: list[str]
    error: str | None = None
    phase: str | None = None
    failed_objects: dict[ObjectRef, str] = field(default_factory=dict)
    seconds: float = 0.0


class StepFailed(Exception):
    def __init__(
        self, phase: str, message: str, objects: dict[ObjectRef, str] | None = None
    ) -> None:
        super().__init__(message)
        self.phase = phase
        self.message = message
        self.objects = objects or {}


def _sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("== "):
            current = line[3:].strip()
            sections.setdefault(current, [])
        else:
            sections.setdefault(current, []).append(line)
    return sections


def facts_of(plugins: Sequence[Provisioner]) -> list[Fact[Any]]:
    """Every fact the plugins read, once each (two plugins may share a fact)."""
    return list({f.name: f for p in plugins for f in p.facts}.values())


def facts_script(facts: Sequence[Fact[Any]]) -> str:
    """The engine's own facts, then each plugin fact in a section of its own."""
    return (
        _FACTS
        + "".join(f'echo "== fact {f.name}"\n( {f.script}\n) || true\n' for f in facts)
        + "exit 0\n"
    )


def parse_facts(text: str, facts: Sequence[Fact[Any]]) -> Facts:
    sections = _sections(text)
    manifest: dict[str, str] = {}
    for line in sections.get("manifest", []):
        digest, _, path = line.partition("  ")
        if path.startswith("./"):
            manifest[path[2:]] = digest
    users: dict[str, int] = {}
    for line in sections.get("users", []):
        name, _, uid = line.partition(":")
        if uid.isdigit():
            users[name] = int(uid)
    return Facts(
        manifest=manifest,
        users=users,
        present=frozenset(p for p in sections.get("bootstrap", []) if p),
        reload_pending=any(x.strip() for x in sections.get("reload-pending", [])),
        values={f.name: f.parse("\n".join(sections.get(f"fact {f.name}", []))) for f in facts},
    )


class HostEngine:
    """Plans and applies one host's desired state with the plugins that serve it."""

    def __init__(self, plugins: Sequence[Provisioner]) -> None:
        self.plugins = list(plugins)
        self.heartbeat: Callable[[], bool] = lambda: True

    def for_state(self, state: DesiredState) -> list[Provisioner]:
        return [p for p in self.plugins if p.applies_to(state.host)]

    def read_facts(self, conn: Runner, state: DesiredState) -> Facts:
        """Every fact of every plugin of the host, in one exec."""
        plugins = self.for_state(state)
        facts = facts_of(plugins)
        paths = [path for p in plugins for path, _ in p.bootstrap(state.host)]
        result = conn.script(facts_script(facts), *paths)
        if not result.ok:
            raise StepFailed("facts", f"reading the host's state failed: {result.error_text()}")
        return parse_facts(result.text(), facts)

    def plan(
        self,
        conn: Runner,
        state: DesiredState,
        *,
        with_old: bool = True,
    ) -> Plan:
        """Files and steps of failed objects (``state.failed``) are left as the host has them."""
        plugins = self.for_state(state)
        facts = self.read_facts(conn, state)
        files: dict[str, ManagedFile] = {}
        for plugin in plugins:
            for f in plugin.render(state):
                files[f.path] = f
        changes: list[Change] = []
        for path in sorted(files):
            digest = hashlib.sha256(files[path].content).hexdigest()
            current = facts.manifest.get(path)
            if current != digest:
                kind = "add" if current is None else "change"
                changes.append(
                    Change(path, kind, files[path].content, files[path].mode, files[path].group)
                )
        stale = set(facts.manifest) - set(files)
        changes += [
            Change(path, "remove")
            for path in sorted(stale)
            if not any(p.derived(path) for p in plugins)
        ]
        changes = [c for c in changes if _owner(plugins, c.path) not in state.failed]
        bootstrap = [
            (path, content)
            for p in plugins
            for path, content in p.bootstrap(state.host)
            if path not in facts.present
        ]
        changed = {c.path for c in changes}
        steps = [
            s
            for p in plugins
            for s in p.steps(state, facts, changed)
            if not (s.object_ids and set(s.object_ids) <= state.failed)
        ]
        plan = Plan(
            facts,
            files,
            changes,
            steps,
            bootstrap,
            reload_pending=facts.reload_pending,
        )
        if with_old and any(c.kind != "add" for c in changes):
            plan.old = self._read_old(conn, [c.path for c in changes if c.kind != "add"])
        return plan

    def _read_old(self, conn: Runner, paths: list[str]) -> dict[str, bytes]:
        listing = b"\0".join(p.encode() for p in paths) + b"\0"
        result = conn.run(
            ["tar", "-c", "-C", f"{LIVE}/", "--null", "-T", "-", "-f", "-"], stdin=listing
        )
        old: dict[str, bytes] = {}
        if result.ok:
            with tarfile.open(fileobj=io.BytesIO(result.stdout)) as tar:
                for member in tar.getmembers():
                    handle = tar.extractfile(member)
                    if handle is not None:
                        old[member.name] = handle.read()
        return old

    def apply(
        self,
        conn: Runner,
        state: DesiredState,
        label: str,
        heartbeat: Callable[[], bool] = lambda: True,
    ) -> Outcome:
        """Recompute the plan from live facts, then make the host match it."""
        started = time.monotonic()
        log: list[str] = []
        plan: Plan | None = None
        try:
            plan = self.plan(conn, state)
            log.append(f"plan: {plan.summary()}")
            self.heartbeat = heartbeat
            if not plan.is_noop:
                self._apply(conn, state, plan, label, log)
            done = self._converge(conn, state, plan, log)
            if plan.is_noop and not done:
                log.append("nothing to do")
                return Outcome("noop", plan, log, seconds=time.monotonic() - started)
            return Outcome("applied", plan, log, seconds=time.monotonic() - started)
        except StepFailed as exc:
            log.append(f"FAILED in {exc.phase}: {exc.message}")
            return Outcome(
                "failed",
                plan,
                log,
                error=exc.message,
                phase=exc.phase,
                failed_objects=exc.objects,
                seconds=time.monotonic() - started,
            )

    def _converge(self, conn: Runner, state: DesiredState, plan: Plan, log: list[str]) -> list[str]:
        """API-driven services, once the files are live; what they did goes to the log."""
        done: list[str] = []
        for plugin in self.for_state(state):
            self._alive()
            try:
                actions = plugin.converge(conn, state, plan.facts)
            except Failure as exc:
                raise StepFailed(f"converge {plugin.name}", exc.message, exc.objects) from exc
            log.extend(f"{plugin.name}: {a}" for a in actions)
            done += actions
        return done

    def _alive(self) -> None:
        """Fencing: before each phase that writes, make sure the host is still ours."""
        if not self.heartbeat():
            raise StepFailed("lease", "another worker took this host over; stopping here")

    def _apply(
        self, conn: Runner, state: DesiredState, plan: Plan, label: str, log: list[str]
    ) -> None:
        plugins = self.for_state(state)
        self._alive()
        if plan.bootstrap:
            _check(conn.script(_INIT_TREE), "bootstrap", log, "konbit tree")
        for path, content in plan.bootstrap:
            _check(conn.script(_WRITE, path, stdin=content), "bootstrap", log, path)
        before = [s for s in plan.steps if s.phase == "before"]
        if not plan.changes:
            self._run_steps(conn, before, log)
        if plan.changes:
            self._alive()
            new_gen = self._stage(conn, plan, before, label, log)
            self._validate(conn, state, plan, plugins, new_gen, log)
            self._alive()
            swap = conn.script(_SWAP, label)
            _check(swap, "swap", log, f"live -> gen/{label}")
            previous = swap.text().strip()
            changed = plan.changed_paths
            reloads = _reloads(plugins, state, changed)
            for argv in reloads:
                result = conn.run(list(argv))
                if not result.ok:
                    if previous:
                        conn.run(["ln", "-sfn", previous, f"{KONBIT_ROOT}/live.old"])
                        conn.run(["mv", "-T", f"{KONBIT_ROOT}/live.old", LIVE])
                        for again in reloads:
                            conn.run(list(again))
                    raise StepFailed(
                        "reload",
                        f"{' '.join(argv)}: {result.error_text()}; "
                        f"rolled back to {previous or 'nothing'}",
                    )
                log.append(f"reloaded: {' '.join(argv)}")
            conn.script(_PRUNE, label)
        elif plan.reload_pending:
            every = set(plan.files)
            for argv in _reloads(plugins, state, every):
                _check(conn.run(list(argv)), "reload", log, " ".join(argv))
        if plan.reload_pending and not plan.changes:
            conn.run(["rm", "-f", f"{KONBIT_ROOT}/reload-pending"])
        self._run_steps(conn, [s for s in plan.steps if s.phase == "after"], log)

    def _validate(
        self,
        conn: Runner,
        state: DesiredState,
        plan: Plan,
        plugins: list[Provisioner],
        new_gen: str,
        log: list[str],
    ) -> None:
        """Every checker of every plugin whose files changed, at once (nginx -t and
        php-fpm -t read different files); the first failure, in plugin order, is reported."""
        changed = plan.changed_paths
        checks = [
            tuple(argv)
            for plugin in plugins
            if plan.bootstrap or any(plugin.owns(p) for p in changed)
            for argv in plugin.validate(state)
        ]
        if not checks:
            return
        with ThreadPoolExecutor(max_workers=len(checks)) as pool:
            results = list(
                pool.map(
                    lambda argv: conn.run(
                        ["unshare", "-m", "sh", "-c", _VALIDATE, "konbit", new_gen, *argv]
                    ),
                    checks,
                )
            )
        for argv, result in zip(checks, results, strict=True):
            if not result.ok:
                conn.run(["rm", "-rf", "--", new_gen])
                message = (result.error_text() or result.text()).strip()
                raise StepFailed(
                    "validate",
                    f"{' '.join(argv)}: {message}",
                    _blame(message, plugins, state, plan.changed_paths),
                )
            log.append(f"validated: {' '.join(argv)}")

    def _stage(
        self, conn: Runner, plan: Plan, before: list[Step], label: str, log: list[str]
    ) -> str:
        """Upload the new generation while the before steps (users, directories) run: they
        touch different things, so they go at once on two channels of the connection."""
        new_gen = f"{KONBIT_ROOT}/gen/{label}"
        step_log: list[str] = []
        with ThreadPoolExecutor(max_workers=1) as pool:
            stepping = pool.submit(self._run_steps, conn, before, step_log)
            stage = conn.script(_STAGE, label, stdin=_tarball(plan.changes))
            try:
                stepping.result()
            except StepFailed:
                log.extend(step_log)
                conn.run(["rm", "-rf", "--", new_gen])
                raise
        log.extend(step_log)
        _check(stage, "stage", log, f"staged generation {label}")
        return new_gen

    def _run_steps(self, conn: Runner, steps: list[Step], log: list[str]) -> None:
        """All steps of a phase in one exec (never one round trip per object): a script of
        shlex-quoted argv lines that stops at the first failure and says which it was."""
        if not steps:
            return
        # fd 3 carries the failure marker; no step (nor a daemon it starts) may inherit it,
        # or the channel stays open until the command times out.
        lines = ["exec 3>&1"]
        for i, step in enumerate(steps):
            on_error = f" || {{ echo 'konbit-step-failed {i}' >&3; exit 3; }}"
            if step.stdin is None:
                lines.append(f"{shlex.join(step.argv)} 3>&- </dev/null{on_error}")
                continue
            # A quoted here-document: the shell expands nothing in it, and a random
            # delimiter no input can contain ends it.
            data = step.stdin.decode()
            end = f"KONBIT_{secrets.token_hex(12)}"
            if not data.endswith("\n"):
                data += "\n"
            lines.append(f"{shlex.join(step.argv)} 3>&- <<'{end}'{on_error}\n{data}{end}")
        # On stdin, not as an argument: 1,000 sites make a script far over ARG_MAX.
        result = conn.run(["sh", "-s"], stdin="\n".join(lines).encode() + b"\n")
        if result.ok:
            log.extend(f"step: {step.description}" for step in steps)
            return
        marker = re.search(r"konbit-step-failed (\d+)", result.text())
        failed = steps[int(marker.group(1))] if marker else None
        index = steps.index(failed) if failed else len(steps)
        log.extend(f"step: {step.description}" for step in steps[:index])
        what = failed.description if failed else "steps"
        reason = f"{what}: {result.error_text(1000).strip() or f'exit {result.exit_code}'}"
        objects = {obj: reason for obj in failed.object_ids} if failed else {}
        raise StepFailed("steps", reason, objects)


def _reloads(
    plugins: Sequence[Provisioner], state: DesiredState, changed: set[str]
) -> list[tuple[str, ...]]:
    """Each reload once, services others talk to (PHP-FPM's sockets) before their clients
    (the web servers), so a vhost never points at a socket that is not listening yet."""
    ranked = sorted(plugins, key=lambda p: p.reload_rank)
    return _unique([tuple(a) for p in ranked for a in p.reload(state, changed)])


def _unique(items: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    return list(dict.fromkeys(items))


def _check(result: Result, phase: str, log: list[str], what: str) -> None:
    if not result.ok:
        raise StepFailed(phase, f"{what}: {result.error_text().strip() or result.text()}")
    log.append(f"{phase}: {what}")


def _owner(plugins: Sequence[Provisioner], path: str) -> ObjectRef | None:
    return next((ref for p in plugins if (ref := p.object_of(path)) is not None), None)


def _blame(
    message: str, plugins: Sequence[Provisioner], state: DesiredState, changed: set[str]
) -> dict[ObjectRef, str]:
    """The objects a checker's message names or, when it names none (nginx's
    server_names_hash error names no file), the objects whose own files changed."""
    refs = {ref for p in plugins for ref in p.blame(message)}
    if not refs:
        refs = {ref for path in changed if (ref := _owner(plugins, path)) is not None}
    return dict.fromkeys(refs, message)


def _tarball(changes: list[Change]) -> bytes:
    buf = io.BytesIO()
    now = time.time()
    removed = [c.path for c in changes if c.kind == "remove"]
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for change in changes:
            if change.new is None:
                continue
            info = tarfile.TarInfo(change.path)
            info.size = len(change.new)
            info.mode = change.mode
            info.uname, info.uid = "root", 0
            info.gname, info.gid = change.group, 0
            info.mtime = int(now)
            tar.addfile(info, io.BytesIO(change.new))
        if removed:
            data = b"\0".join(p.encode() for p in removed) + b"\0"
            info = tarfile.TarInfo(".konbit-remove")
            info.size = len(data)
            info.mtime = int(now)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
