"""A ``Runner`` in memory, for tests of the engine and of plugins: no host, no SSH.

``FakeRunner`` records every command it is given and answers each with the first rule
that matches it (a regular expression searched in the command line, or a predicate);
unmatched commands succeed with no output.  ``facts`` sets what the one facts exec of a
reconcile answers, in the engine's own format, so a plan can be built from any host
state the test describes.
"""

from __future__ import annotations

import re
import shlex
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from provisioners.api import Fact, HttpResponse, Result

Matcher = str | Callable[["Command"], bool]


@dataclass(frozen=True)
class Command:
    """One command as the fake saw it: argv, the stdin it was given, its shell line."""

    argv: tuple[str, ...]
    stdin: bytes | None

    @property
    def line(self) -> str:
        return shlex.join(self.argv)

    @property
    def script(self) -> str:
        """The script of ``sh -c SCRIPT ...`` (or of ``sh -s`` on stdin), else ''."""
        if self.argv[:2] == ("sh", "-c") and len(self.argv) > 2:
            return self.argv[2]
        if self.argv[:2] == ("sh", "-s"):
            return (self.stdin or b"").decode()
        return ""


@dataclass
class _Rule:
    match: Matcher
    exit_code: int
    stdout: bytes
    stderr: bytes
    times: int | None  # None: every time

    def matches(self, command: Command) -> bool:
        if isinstance(self.match, str):
            return re.search(self.match, command.line) is not None or (
                re.search(self.match, command.script) is not None
            )
        return self.match(command)


@dataclass
class FakeRunner:
    """Records commands, returns canned output; thread-safe (the engine runs checkers and
    steps on several channels at once)."""

    name: str = "fake"
    commands: list[Command] = field(default_factory=list)
    _rules: list[_Rule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def on(
        self,
        match: Matcher,
        *,
        exit_code: int = 0,
        stdout: bytes | str = b"",
        stderr: bytes | str = b"",
        times: int | None = None,
    ) -> FakeRunner:
        """Answer commands that match; the newest rule wins, ``times`` bounds its uses."""
        out = stdout.encode() if isinstance(stdout, str) else stdout
        err = stderr.encode() if isinstance(stderr, str) else stderr
        self._rules.insert(0, _Rule(match, exit_code, out, err, times))
        return self

    def facts(
        self,
        *,
        manifest: Mapping[str, str] | None = None,
        users: Mapping[str, int] | None = None,
        present: Sequence[str] = (),
        reload_pending: bool = False,
        outputs: Mapping[Fact[Any], str] | None = None,
    ) -> FakeRunner:
        """What the host answers to the engine's facts exec (the one with ``== manifest``)."""
        parts = ["== manifest"]
        parts += [f"{digest}  ./{path}" for path, digest in (manifest or {}).items()]
        parts.append("== users")
        parts += [f"{name}:{uid}" for name, uid in (users or {}).items()]
        parts.append("== reload-pending")
        if reload_pending:
            parts.append("pending")
        parts.append("== bootstrap")
        parts += list(present)
        for fact, text in (outputs or {}).items():
            parts.append(f"== fact {fact.name}")
            parts += text.splitlines()
        return self.on(r'echo "== manifest"', stdout="\n".join(parts) + "\n")

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> Result:
        command = Command(tuple(argv), stdin)
        with self._lock:
            self.commands.append(command)
            rule = next((r for r in self._rules if r.matches(command)), None)
            if rule is not None and rule.times is not None:
                rule.times -= 1
                if rule.times == 0:
                    self._rules.remove(rule)
        if rule is None:
            return Result(command.argv, 0, b"", b"", 0.0)
        return Result(command.argv, rule.exit_code, rule.stdout, rule.stderr, 0.0)

    def script(
        self, script: str, *args: str, stdin: bytes | None = None, timeout: float | None = None
    ) -> Result:
        return self.run(["sh", "-c", script, "konbit", *args], stdin=stdin, timeout=timeout)

    def http(
        self,
        port: int,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        timeout: float | None = None,
    ) -> HttpResponse:
        result = self.run(["http", str(port), method, path], stdin=body or None)
        return HttpResponse(200 if result.ok else 500, {}, result.stdout)

    def ran(self, pattern: str) -> list[Command]:
        """The commands whose line or script matches ``pattern``, in order."""
        return [c for c in self.commands if _Rule(pattern, 0, b"", b"", None).matches(c)]
