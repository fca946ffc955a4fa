"""The reconcile engine on a FakeRunner: plan, stage, validate, swap, reload, blame.

No host: the fake answers the facts exec with the host state each test describes and
records every command, so each test says exactly what reached the "host".
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from collections.abc import Sequence

from provisioners.api import (
    DesiredState,
    Fact,
    Facts,
    HostView,
    ManagedFile,
    ObjectRef,
    Provisioner,
    Step,
    lines,
)
from provisioners.engine import HostEngine
from provisioners.testing import Command, FakeRunner

HOST = HostView(1, "h1", ("demo",), {})
STATE = DesiredState(host=HOST)
READY = Fact("demo_ready", "[ -e /var/lib/demo ] && echo ready; true", lines)


class Demo(Provisioner):
    """Two notes as files; a checker that refuses a note reading "bad"; one reload."""

    name = "demo"
    roles = ("demo",)
    facts = (READY,)

    def __init__(self, notes: dict[int, str] | None = None) -> None:
        self.notes = {1: "one", 2: "two"} if notes is None else notes

    def render(self, state: DesiredState) -> Sequence[ManagedFile]:
        return [ManagedFile(f"demo/note-{i}", f"{t}\n".encode()) for i, t in self.notes.items()]

    def object_of(self, path: str) -> ObjectRef | None:
        m = re.fullmatch(r"demo/note-(\d+)", path)
        return ("note", int(m.group(1))) if m else None

    def blame(self, message: str) -> set[ObjectRef]:
        return {("note", int(i)) for i in re.findall(r"note-(\d+)", message)}

    def validate(self, state: DesiredState) -> Sequence[Sequence[str]]:
        return [["demo-check"]]

    def reload(self, state: DesiredState, changed: set[str]) -> Sequence[Sequence[str]]:
        return [["demo-reload"]] if changed else []

    def steps(self, state: DesiredState, facts: Facts, changed: set[str]) -> Sequence[Step]:
        steps = []
        if "ready" not in facts[READY]:
            steps.append(Step("demo dir", ("install", "-d", "/var/lib/demo")))
        steps += [
            Step(f"seed note {i}", ("demo-seed", str(i)), "after", (("note", i),))
            for i in sorted(self.notes)
            if f"demo/note-{i}" in changed
        ]
        return steps


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def tar_of(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return buf.getvalue()


def host(live: dict[str, str], ready: bool = True) -> FakeRunner:
    """A fake host whose live tree holds ``live`` and which answers reads of it."""
    fake = FakeRunner()
    fake.facts(
        manifest={p: sha(t) for p, t in live.items()},
        outputs={READY: "ready" if ready else ""},
    )
    fake.on(r"^tar -c", stdout=tar_of(live))
    fake.on(r'previous="\$\(readlink', stdout="gen/0\n")  # the swap answers the old generation
    return fake


def staged(fake: FakeRunner) -> tuple[dict[str, bytes], list[str]]:
    """What the one upload carried: files, and the paths it removes."""
    [upload] = [c for c in fake.commands if "tar -x -C" in c.script]
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(upload.stdin or b"")) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            assert handle is not None
            files[member.name] = handle.read()
    removed = files.pop(".konbit-remove", b"").decode().split("\0")
    return files, [r for r in removed if r]


def lines_of(fake: FakeRunner) -> list[str]:
    return [c.line for c in fake.commands]


def test_plan_diffs_the_manifest_and_reads_facts_in_one_exec() -> None:
    fake = host({"demo/note-1": "one\n", "demo/note-2": "old\n", "demo/note-9": "gone\n"})
    plan = HostEngine([Demo({1: "one", 2: "two", 3: "three"})]).plan(fake, STATE)
    assert [(c.path, c.kind) for c in plan.changes] == [
        ("demo/note-2", "change"),
        ("demo/note-3", "add"),
        ("demo/note-9", "remove"),
    ]
    assert [s.description for s in plan.steps] == ["seed note 2", "seed note 3"]
    assert "-old\n+two" in plan.diff()
    assert len(fake.ran(r'echo "== manifest"')) == 1  # every fact in the one exec
    assert "demo_ready" in fake.commands[0].script
    assert plan.summary() == "1 added, 1 changed, 1 removed, 2 steps"


def test_a_host_that_matches_is_a_noop_with_no_upload_and_no_reload() -> None:
    fake = host({"demo/note-1": "one\n", "demo/note-2": "two\n"})
    outcome = HostEngine([Demo()]).apply(fake, STATE, "7-a")
    assert outcome.result == "noop", outcome.log
    assert lines_of(fake) == [fake.commands[0].line]  # the facts exec, nothing else


def test_a_missing_fact_asks_for_its_step() -> None:
    fake = host({"demo/note-1": "one\n", "demo/note-2": "two\n"}, ready=False)
    outcome = HostEngine([Demo()]).apply(fake, STATE, "7-a")
    assert outcome.result == "applied", outcome.log
    [steps] = fake.ran(r"^sh -s")
    assert "install -d /var/lib/demo" in steps.script
    assert not fake.ran("demo-reload")  # nothing changed in the tree: no reload


def test_apply_stages_only_the_changes_then_swaps_and_reloads_once() -> None:
    fake = host({"demo/note-1": "one\n", "demo/note-2": "old\n", "demo/note-9": "gone\n"})
    outcome = HostEngine([Demo()]).apply(fake, STATE, "7-a")
    assert outcome.result == "applied", outcome.log
    files, removed = staged(fake)
    assert files == {"demo/note-2": b"two\n"} and removed == ["demo/note-9"]
    order = [
        next(i for i, c in enumerate(fake.commands) if re.search(p, c.line + c.script))
        for p in (r"tar -x -C", r"demo-check", r'ln -sfn "gen/\$1"', r"demo-reload", r"demo-seed")
    ]
    assert order == sorted(order)  # stage, validate, swap, reload, after-steps
    assert len(fake.ran("demo-reload")) == 1
    assert fake.ran(r"demo-check")[0].argv[:2] == ("unshare", "-m")  # the staged tree


def test_a_failed_check_keeps_the_live_tree_and_blames_the_named_object() -> None:
    fake = host({"demo/note-1": "one\n", "demo/note-2": "two\n"})
    fake.on("demo-check", exit_code=1, stderr="demo/note-2: bad note")
    outcome = HostEngine([Demo({1: "uno", 2: "bad"})]).apply(fake, STATE, "7-a")
    assert (outcome.result, outcome.phase) == ("failed", "validate")
    assert outcome.failed_objects == {("note", 2): "demo/note-2: bad note"}
    assert not fake.ran(r'ln -sfn "gen/\$1"') and not fake.ran("demo-reload")
    assert fake.ran(r"^rm -rf -- /etc/konbit/gen/7-a$")  # the staged generation goes


def test_a_check_that_names_nothing_blames_the_objects_whose_files_changed() -> None:
    fake = host({"demo/note-1": "one\n", "demo/note-2": "two\n"})
    fake.on("demo-check", exit_code=1, stderr="could not build the hash table")
    outcome = HostEngine([Demo({1: "uno", 2: "two"})]).apply(fake, STATE, "7-a")
    assert outcome.failed_objects == {("note", 1): "could not build the hash table"}


def test_a_failed_reload_flips_back_and_reloads_the_old_tree() -> None:
    fake = host({"demo/note-1": "one\n", "demo/note-2": "two\n"})
    fake.on("demo-reload", exit_code=1, stderr="cannot bind", times=1)
    outcome = HostEngine([Demo({1: "uno", 2: "two"})]).apply(fake, STATE, "7-a")
    assert (outcome.result, outcome.phase) == ("failed", "reload")
    assert "rolled back to gen/0" in (outcome.error or "")
    tail = lines_of(fake)[-4:]
    assert tail == [
        "demo-reload",
        "ln -sfn gen/0 /etc/konbit/live.old",
        "mv -T /etc/konbit/live.old /etc/konbit/live",
        "demo-reload",
    ]
    assert not fake.ran("demo-seed")  # after-steps never run on a rolled-back tree


def test_frozen_failed_objects_keep_what_the_host_has() -> None:
    fake = host({"demo/note-1": "one\n", "demo/note-2": "two\n"})
    state = DesiredState(host=HOST, failed=frozenset({("note", 2)}))
    plan = HostEngine([Demo({1: "uno", 2: "bad"})]).plan(fake, state)
    assert [c.path for c in plan.changes] == ["demo/note-1"]
    assert [s.description for s in plan.steps] == ["seed note 1"]


def test_a_failed_step_names_its_object() -> None:
    fake = host({"demo/note-1": "one\n", "demo/note-2": "two\n"})
    fake.on(lambda c: c.argv == ("sh", "-s") and "demo-seed 1" in c.script,
            exit_code=3, stdout="konbit-step-failed 0\n", stderr="seed: disk full")
    outcome = HostEngine([Demo({1: "uno", 2: "two"})]).apply(fake, STATE, "7-a")
    assert (outcome.result, outcome.phase) == ("failed", "steps")
    assert outcome.failed_objects == {("note", 1): "seed note 1: seed: disk full"}


def test_plugins_of_other_roles_are_left_out() -> None:
    fake = host({})
    other = DesiredState(host=HostView(2, "h2", ("web",), {}))
    plan = HostEngine([Demo()]).plan(fake, other)
    assert plan.is_noop and "demo_ready" not in fake.commands[0].script


def test_unknown_commands_succeed_and_are_recorded() -> None:
    fake = FakeRunner()
    assert fake.run(["true"]).ok and fake.commands == [Command(("true",), None)]


def test_a_backend_reloads_before_the_front_end_that_connects_to_it() -> None:
    class Front(Demo):
        name = "a-front"  # sorts first by name, yet reloads last

        def reload(self, state: DesiredState, changed: set[str]) -> Sequence[Sequence[str]]:
            return [["front-reload"]]

    class Back(Demo):
        name = "z-back"
        reload_rank = 10

        def render(self, state: DesiredState) -> Sequence[ManagedFile]:
            return []

        def reload(self, state: DesiredState, changed: set[str]) -> Sequence[Sequence[str]]:
            return [["back-reload"]]

    fake = host({"demo/note-1": "old\n", "demo/note-2": "two\n"})
    outcome = HostEngine([Front(), Back()]).apply(fake, STATE, "7-a")
    assert outcome.result == "applied", outcome.log
    reloads = [c.line for c in fake.commands if c.line.endswith("-reload")]
    assert reloads == ["back-reload", "front-reload"]
