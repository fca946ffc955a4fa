"""Usage collection: every plugin's measurements of one host in one exec."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from provisioners.api import DesiredState, Failure, Provisioner, Runner, Sample


class CollectionFailed(Exception):
    """The host answered, but its usage script did not run to the end."""


@dataclass
class Collection:
    samples: list[Sample] = field(default_factory=list)
    cursors: dict[str, dict[str, Any]] = field(default_factory=dict)  # plugin -> cursor
    seconds: float = 0.0


def collect(
    conn: Runner,
    state: DesiredState,
    plugins: Sequence[Provisioner],
    cursors: Mapping[str, Mapping[str, Any]],
) -> Collection:
    """One script on stdin (no argv limit at 10,000 objects), one section per plugin; a
    plugin's section ends with a marker so a cut-short run is never taken as complete."""
    started = time.monotonic()
    serving = [p for p in plugins if p.applies_to(state.host)]
    parts: list[str] = []
    for plugin in serving:
        snippet = plugin.usage_script(state, cursors.get(plugin.name, {}))
        if snippet:
            parts.append(
                f"echo '== usage {plugin.name}'\n( {snippet}\n) || exit 3\n"
                f"echo '== end {plugin.name}'\n"
            )
    out = Collection()
    if not parts:
        return out
    result = conn.run(["sh", "-s"], stdin=("set -u\n" + "".join(parts)).encode())
    if not result.ok:
        raise CollectionFailed(
            f"usage script on {conn.name} exited {result.exit_code}: "
            f"{result.error_text(500).strip()}"
        )
    sections: dict[str, list[str]] = {}
    done: set[str] = set()
    current: str | None = None
    for line in result.text().splitlines():
        if line.startswith("== usage "):
            current = line[9:].strip()
            sections[current] = []
        elif line.startswith("== end "):
            done.add(line[7:].strip())
            current = None
        elif current is not None:
            sections[current].append(line)
    for plugin in serving:
        if plugin.name not in sections:
            continue
        if plugin.name not in done:
            raise CollectionFailed(f"usage of {plugin.name} on {conn.name} was cut short")
        try:
            samples, cursor = plugin.parse_usage(
                state, "\n".join(sections[plugin.name]), cursors.get(plugin.name, {})
            )
        except Failure as exc:
            raise CollectionFailed(f"{plugin.name} on {conn.name}: {exc.message}") from exc
        out.samples += samples
        out.cursors[plugin.name] = cursor
    out.seconds = time.monotonic() - started
    return out
