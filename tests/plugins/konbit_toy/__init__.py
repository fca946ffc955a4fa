"""A toy provisioner plugin, written only against ``provisioners.api``: the proof that a
new service needs no panel file edited.  The test suite "installs" it by putting
``tests/plugins`` on ``sys.path`` (pytest's ``pythonpath``), whose dist-info declares its
entry point exactly as pip would.

It serves role ``toy``, reads a host setting ``toy_motd``, and declares object kind
``toy_note`` (a short text the panel stores for it, placed on one toy host) and
``toy_banner`` (served by every toy host): each note becomes a file of the
konbit tree, a checker refuses notes that start with ``FORBIDDEN`` (blaming the note),
and a step keeps a count of the notes in a spool directory it sets up once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from provisioners.api import (
    LIVE,
    DesiredState,
    Fact,
    Facts,
    ManagedFile,
    Metric,
    ObjectKind,
    ObjectRef,
    Provisioner,
    Sample,
    Step,
    lines,
)

SPOOL = "/var/lib/konbit-toy"
_NOTE = re.compile(r"toy/note-(\d+)\.txt")
# Printable ASCII without quotes or backslashes: nothing a file or a checker could misread.
Line = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9 .,:!?()-]{1,200}$")]


class ToySettings(BaseModel):
    toy_motd: Line = Field(default="hello from konbit", description="toy hosts: the motd")


class ToyNote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Line
    mode: Literal["public", "private"] = "public"


class ToyBanner(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Line


SPOOL_FACT = Fact("toy_spool", f"[ -d {SPOOL} ] && echo present; true", lines)

_CHECK = r"""
for f in /etc/konbit/live/toy/note-*.txt; do
    [ -e "$f" ] || continue
    if grep -q '^FORBIDDEN' "$f"; then
        echo "$f: a note may not start with FORBIDDEN" >&2; exit 1
    fi
done
"""
_COUNT = 'printf "%s\\n" "$1" > "$2.new" && mv -f -- "$2.new" "$2"'


class Toy(Provisioner):
    name = "toy"
    roles = ("toy",)
    settings = ToySettings
    kinds = (
        ObjectKind("toy_note", "toy", spec=ToyNote, title="toy note"),
        # Served by every toy host, as a DNS zone is by every DNS server.
        ObjectKind("toy_banner", "toy", spec=ToyBanner, placement="role", title="toy banner"),
    )
    metrics = (Metric("toy_note_bytes", "toy"),)
    facts = (SPOOL_FACT,)

    def render(self, state: DesiredState) -> Sequence[ManagedFile]:
        motd = state.host.settings_as(ToySettings).toy_motd
        files = [ManagedFile("toy/motd", f"{motd}\n".encode())]
        for note in state.items("toy_note", ToyNote):
            if not note.deleting:
                files.append(
                    ManagedFile(
                        f"toy/note-{note.id}.txt",
                        f"{note.spec.text}\n".encode(),
                        0o644 if note.spec.mode == "public" else 0o600,
                    )
                )
        files += [
            ManagedFile(f"toy/banner-{b.id}.txt", f"{b.spec.text}\n".encode())
            for b in state.items("toy_banner", ToyBanner)
            if not b.deleting
        ]
        return files

    def object_of(self, path: str) -> ObjectRef | None:
        m = _NOTE.fullmatch(path)
        return ("toy_note", int(m.group(1))) if m else None

    def blame(self, message: str) -> set[ObjectRef]:
        return {("toy_note", int(m)) for m in re.findall(r"note-(\d+)\.txt", message)}

    def validate(self, state: DesiredState) -> Sequence[Sequence[str]]:
        return [["sh", "-c", _CHECK]]

    def steps(self, state: DesiredState, facts: Facts, changed: set[str]) -> Sequence[Step]:
        steps: list[Step] = []
        if "present" not in facts[SPOOL_FACT]:
            steps.append(Step("toy spool", ("install", "-d", "-m", "0755", SPOOL)))
        if steps or any(self.owns(p) for p in changed):
            live = [n for n in state.items("toy_note", ToyNote) if not n.deleting]
            steps.append(
                Step(
                    "toy note count",
                    ("sh", "-c", _COUNT, "konbit", str(len(live)), f"{SPOOL}/count"),
                    phase="after",
                )
            )
        return steps

    def usage_script(self, state: DesiredState, cursor: Mapping[str, Any]) -> str | None:
        return f"cd {LIVE}/toy 2>/dev/null && wc -c note-*.txt 2>/dev/null; true"

    def parse_usage(
        self, state: DesiredState, output: str, cursor: Mapping[str, Any]
    ) -> tuple[list[Sample], dict[str, Any]]:
        samples = []
        for line in output.splitlines():
            size, _, name = line.strip().partition(" ")
            m = _NOTE.fullmatch(f"toy/{name}")
            if m and size.isdigit():
                samples.append(Sample(("toy_note", int(m.group(1))), "toy_note_bytes", int(size)))
        return samples, {}
