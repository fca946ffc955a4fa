"""Members' cron jobs on web hosts: one crontab per host, one root-owned wrapper.

Each job is an object of kind ``cron_job`` attached to one of its account's sites (it
lives on the site's web host).  The host carries, in the konbit tree:

* ``cron/konbit``: a crontab in ``/etc/cron.d`` format, one line per enabled job, each
  running ``/etc/konbit/live/cron/run <job id>`` as root: the member's command never
  appears in a crontab line, so neither cron's ``%`` rule nor any shell quoting applies
  to it;
* ``cron/jobs/<id>``: the job as data (user, home, time limit, output, command), 0600;
* ``cron/run``: the wrapper, which runs the command as the account's user (``runuser``),
  in the account's home, with a clean environment, under ``timeout``, under ``flock`` (a
  job's runs never overlap), and keeps each run (times, exit code, output) under
  ``/var/lib/konbit/cron/<id>/`` (root only), mailing the output when asked.

``/etc/cron.d/konbit`` is a symlink to the live crontab (Debian's cron reads symlinks in
``/etc/cron.d`` owned by root whose target is owned by root and not group/other
writable, and notices a new target by its mtime; the engine writes changed files with
the time of the reconcile).  Debian's cron has no syntax checker: the values were parsed
and normalised at the API boundary, and ``validate`` re-reads the staged crontab line by
line before the swap.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from provisioners.api import (
    LIVE,
    Command,
    DesiredState,
    Fact,
    Facts,
    Item,
    ManagedFile,
    ObjectKind,
    ObjectRef,
    Provisioner,
    Step,
    lines,
)
from provisioners.api.values import check_text

KIND = "cron_job"
CRON_D = "/etc/cron.d/konbit"  # no dot in the name: cron ignores such files
CRONTAB = "cron/konbit"
WRAPPER = "cron/run"
RUNS_DIR = "/var/lib/konbit/cron"
KEEP_RUNS = 10  # run records kept per job
OUTPUT_LIMIT = 65536  # bytes of a run's output kept (the rest is read and dropped)
# Where accounts' homes are on a web host (the web plugin's ``home()``; a plugin imports
# only ``provisioners.api``, so the path is repeated here and checked by a unit test).
WWW_ROOT = "/var/www/konbit"
COMMAND_MAX = 1000

_JOB_FILE = re.compile(r"cron/jobs/(\d+)")

# ------------------------------------------------------------------ schedules

# Field name, lowest, highest, names (index + offset is the value).
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...], int], ...] = (
    ("minute", 0, 59, (), 0),
    ("hour", 0, 23, (), 0),
    ("day of month", 1, 31, (), 0),
    (
        "month",
        1,
        12,
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        1,
    ),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat"), 0),
)
# cron's nicknames as the five fields they stand for.  @reboot is refused (see below).
NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_ITEM = re.compile(r"(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/([0-9]+))?")


def _value(text: str, name: str, low: int, high: int, names: tuple[str, ...], base: int) -> int:
    if text.isdigit():
        number = int(text)
    elif text in names:
        number = names.index(text) + base
    else:
        hint = f" or a name ({', '.join(names)})" if names else ""
        raise ValueError(f"{name}: {text!r} is not a number from {low} to {high}{hint}")
    if not low <= number <= high:
        raise ValueError(f"{name}: {number} is out of range ({low} to {high})")
    return number


def _field(text: str, name: str, low: int, high: int, names: tuple[str, ...], base: int) -> str:
    """One field as numbers only (names replaced): what every cron reads the same way."""
    items = text.split(",")
    if len(items) > 60 or not all(items):
        raise ValueError(f"{name}: {text!r} is not a list of values, ranges or steps")
    out = []
    for item in items:
        m = _ITEM.fullmatch(item)
        if not m:
            raise ValueError(
                f"{name}: {item!r} is not a value, a range (1-5), a step (*/15, 0-30/5) or *"
            )
        part, step = m.group(1), m.group(2)
        if part == "*":
            rendered = "*"
        elif "-" in part:
            a, b = part.split("-")
            first = _value(a, name, low, high, names, base)
            last = _value(b, name, low, high, names, base)
            if first > last:
                raise ValueError(f"{name}: the range {item!r} runs backwards; write {b}-{a}")
            rendered = f"{first}-{last}"
        else:
            if step is not None:
                # Crons disagree on "5/10" (5 alone, or 5-59/10): refused, not guessed.
                raise ValueError(
                    f"{name}: {item!r} is ambiguous; write a range: {part}-{high}/{step}"
                )
            rendered = str(_value(part, name, low, high, names, base))
        if step is not None:
            if not 1 <= int(step) <= high - low + 1:
                raise ValueError(f"{name}: the step in {item!r} must be from 1 to {high - low + 1}")
            rendered += f"/{int(step)}"
        out.append(rendered)
    return ",".join(out)


def normalise_schedule(text: str) -> str:
    """A schedule as five numeric fields (``*/15 9-17 * * mon-fri`` -> ``*/15 9-17 * * 1-5``),
    or ValueError with a sentence that says what to write instead."""
    check_text(text)
    spec = " ".join(text.lower().split())
    if spec == "@reboot":
        raise ValueError(
            "@reboot is not offered: a job would run only when the web host restarts (which "
            "you neither choose nor see) and never after a move to another host; use a "
            "time schedule, and 'run now' to run it once"
        )
    if spec.startswith("@"):
        if spec not in NICKNAMES:
            raise ValueError(f"unknown nickname {spec!r}; use one of {', '.join(NICKNAMES)}")
        return NICKNAMES[spec]
    fields = spec.split(" ")
    if len(fields) != 5:
        raise ValueError(
            "must be five fields (minute hour day-of-month month day-of-week, e.g. "
            f"'*/15 * * * *') or one of {', '.join(NICKNAMES)}; got {len(fields)} fields"
        )
    return " ".join(_field(f, *meta) for f, meta in zip(fields, _FIELDS, strict=True))


# ------------------------------------------------------------------ the spec

_EMAIL = re.compile(
    r"[a-z0-9](?:[a-z0-9._+-]{0,62}[a-z0-9])?@"
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)


class CronSpec(BaseModel):
    """A member's cron job, as the API takes it (a 422 names ``spec.<field>``)."""

    model_config = ConfigDict(extra="forbid")

    schedule: str = Field(
        max_length=200,
        description="five cron fields (minute hour day-of-month month day-of-week; numbers, "
        "ranges, steps, lists, *, month and day names) or @hourly, @daily, @weekly, "
        "@monthly, @yearly (@reboot is refused); in the web host's time zone",
    )
    command: str = Field(
        description="one shell line, run by /bin/sh as the account's unix user (so it reaches "
        "only what that user may), in the account's home, with a clean environment; '%' is "
        "a plain percent sign (not cron's newline)",
    )
    output: Literal["keep", "mail"] = Field(
        default="keep",
        description="keep: the last runs' output is shown in the panel; mail: also mailed "
        "(when there is output), and kept when the host has no sendmail",
    )
    mail_to: str | None = Field(
        default=None, validate_default=True, description="where output goes when output=mail"
    )
    enabled: bool = True
    timeout_seconds: int = Field(
        default=3600, ge=10, le=86400, description="a run still going after this is stopped"
    )

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        normalise_schedule(value)
        return " ".join(value.lower().split())

    @field_validator("command")
    @classmethod
    def _command(cls, value: str) -> str:
        for ch in value:
            if ch in "\n\r\0":
                raise ValueError("must be one line: no newline, carriage return or NUL")
        check_text(value)  # tabs, escapes, bidi overrides, zero-width characters
        if not value.strip():
            raise ValueError("must not be empty")
        if len(value) > COMMAND_MAX:
            raise ValueError(
                f"is {len(value)} characters; at most {COMMAND_MAX}: put a longer job in a "
                "script in your home and run that"
            )
        return value

    @field_validator("mail_to")
    @classmethod
    def _mail_to(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("output") != "mail":
            if value is not None:
                raise ValueError("only with output 'mail'; leave it out or set output to 'mail'")
            return None
        if value is None:
            raise ValueError("output 'mail' needs an address to mail to")
        check_text(value)
        address = value.strip().lower()
        if len(address) > 254 or not _EMAIL.fullmatch(address):
            raise ValueError("must be an e-mail address like ops@example.org")
        return address


# ------------------------------------------------------------------ host scripts

# The wrapper: root runs it (cron, or the panel's "run now"); "$1" is the job id, "$2"
# "cron" or "now".  It reads the job as data; the command reaches sh -c as one argument.
WRAPPER_SCRIPT = rf"""#!/bin/sh
# Managed by Konbit: runs member cron job "$1" as its account's user and records the run.
set -u
PATH=/usr/sbin:/usr/bin:/sbin:/bin
id="${{1:-}}"; how="${{2:-cron}}"
case "$id" in ''|*[!0-9]*) echo "usage: $0 JOB-ID [cron|now]" >&2; exit 2 ;; esac
job={LIVE}/cron/jobs/"$id"
if [ ! -r "$job" ]; then echo "job $id is not on this host" >&2; exit 2; fi
{{ IFS= read -r user; IFS= read -r home; IFS= read -r limit; IFS= read -r output
  IFS= read -r mail_to; IFS= read -r name; IFS= read -r command; }} < "$job"
umask 077
dir={RUNS_DIR}/"$id"
mkdir "$dir" 2>/dev/null || [ -d "$dir" ] || {{ echo "cannot make $dir" >&2; exit 1; }}
exec 9>"$dir/lock"
if ! flock -n 9; then
    echo "job $id ($name): the previous run is still going; this one is skipped" >&2
    exit 75
fi
start=$(date +%s%3N)
run="$dir/$start-$$"
mkdir "$run" || exit 1
: > "$run/notes"
if cd "$home" 2>/dev/null; then
    # The reader drains the pipe (a job never blocks on its output) and stops at the
    # time limit too: a process the job left behind holding its output gets EPIPE.
    (
        umask 022
        runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" \
            SHELL=/bin/sh PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
            timeout -k 10 "$limit" /bin/sh -c "$command" </dev/null 9>&- 2>&1
        echo "$?" > "$run/code"
    ) 9>&- | timeout -k 5 "$((limit + 30))" \
        sh -c 'head -c "$1" > "$2"; cat > /dev/null' konbit {OUTPUT_LIMIT} "$run/output"
else
    echo "the account's home $home is missing" > "$run/output"
    echo 1 > "$run/code"
fi
code=$(cat "$run/code" 2>/dev/null || echo 1)
[ "$code" = 124 ] && echo "stopped after $limit seconds (time limit)" >> "$run/notes"
size=$(wc -c < "$run/output")
[ "$size" -ge {OUTPUT_LIMIT} ] && echo "output cut after {OUTPUT_LIMIT} bytes" >> "$run/notes"
if [ "$output" = mail ] && [ "$size" -gt 0 ]; then
    if command -v sendmail >/dev/null 2>&1; then
        if {{ printf 'To: %s\nSubject: cron job %s on %s (exit %s)\n' \
                "$mail_to" "$name" "$(hostname)" "$code"
              printf 'Auto-Submitted: auto-generated\n\n'; cat "$run/output"; }} \
            | sendmail -i -- "$mail_to" >/dev/null 2>&1; then
            echo "output mailed to $mail_to" >> "$run/notes"
        else
            echo "mailing to $mail_to failed; output kept here" >> "$run/notes"
        fi
    else
        echo "no sendmail on this host: output kept here, not mailed" >> "$run/notes"
    fi
fi
echo "$start $(date +%s%3N) $code $how" > "$run/meta"
ls -1 "$dir" | grep -E '^[0-9]+-[0-9]+$' | sort -t- -k1,1n -k2,2n | head -n -{KEEP_RUNS} \
    | while IFS= read -r old; do rm -rf -- "${{dir:?}}/$old"; done
[ "$how" = now ] && echo "konbit-run $start-$$"
exit 0
"""

# The last runs of job "$1" (at most "$2", newest first; "$3": only that run), as records:
#   run NAME START_MS END_MS CODE HOW SIZE / note TEXT... / output BASE64-OF-TAIL / end
RUNS_SCRIPT = rf"""
set -u
dir={RUNS_DIR}/"$1"; limit="$2"; only="${{3:-}}"; tail="${{4:-4096}}"
[ -d "$dir" ] || exit 0
ls -1 "$dir" | grep -E '^[0-9]+-[0-9]+$' | sort -t- -k1,1nr -k2,2nr | head -n "$limit" \
| while IFS= read -r r; do
    [ -n "$only" ] && [ "$r" != "$only" ] && continue
    [ -f "$dir/$r/meta" ] || continue
    printf 'run %s %s %s\n' "$r" "$(cat "$dir/$r/meta")" "$(wc -c < "$dir/$r/output")"
    while IFS= read -r n; do printf 'note %s\n' "$n"; done < "$dir/$r/notes"
    printf 'output %s\n' "$(tail -c "$tail" "$dir/$r/output" | base64 -w0)"
    echo end
done
"""

# Checked with the staged tree in place of the live one: every line of the crontab is a
# comment, an assignment this plugin writes, or "<5 numeric fields> root <wrapper> <id>"
# whose job file exists and whose user is known.
CHECK_SCRIPT = rf"""
set -u
tab={LIVE}/{CRONTAB}
[ -f "$tab" ] || exit 0
ok='^(#.*|$|(SHELL|PATH|MAILTO)=.*|([0-9*/,-]+ ){{5}}root {LIVE}/{WRAPPER} [0-9]+)$'
bad=$(grep -Ev "$ok" "$tab")
if [ -n "$bad" ]; then echo "cron: unexpected line in the crontab: $bad" >&2; exit 1; fi
grep -Eo '{LIVE}/{WRAPPER} [0-9]+$' "$tab" | while read -r _ id; do
    f={LIVE}/cron/jobs/"$id"
    if [ ! -f "$f" ]; then echo "cron job $id: no job file" >&2; exit 1; fi
    user=$(head -n 1 "$f")
    if ! getent passwd "$user" >/dev/null; then
        echo "cron job $id: no unix user $user on this host" >&2; exit 1
    fi
done
"""

# "Run now": the wrapper's run, then that run's record with all the output kept.
RUN_NOW_SCRIPT = (
    f'out=$({LIVE}/{WRAPPER} "$1" now) || exit $?\n'
    'set -- "$1" 1000 "${out#konbit-run }" "$2"\n' + RUNS_SCRIPT
)

LINK_FACT = Fact(
    "cron_link",
    f"[ -L {CRON_D} ] && printf 'link %s\\n' \"$(readlink {CRON_D})\"\n"
    f"[ -e {CRON_D} ] && [ ! -L {CRON_D} ] && echo file\n"
    f"[ -d {RUNS_DIR} ] && echo runs\n"
    f"[ -d {RUNS_DIR} ] && find {RUNS_DIR} -mindepth 1 -maxdepth 1 -type d -printf 'job %f\\n'\n"
    "true",
    lines,
)


def home(slug: str) -> str:
    return f"{WWW_ROOT}/{slug}"


def jobs(state: DesiredState) -> tuple[Item[CronSpec], ...]:
    return state.items(KIND, CronSpec)


def crontab(state: DesiredState) -> bytes:
    """The host's crontab: one line per enabled job, numeric fields only.  A job the host
    refused (``state.failed``) is left out until it changes, so it blocks no other."""
    out = [
        "# Managed by Konbit: members' cron jobs (see /etc/konbit/live/cron/jobs/).",
        "SHELL=/bin/sh",
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        'MAILTO=""',
    ]
    for job in sorted(jobs(state), key=lambda j: j.id):
        if job.deleting or not job.spec.enabled or (KIND, job.id) in state.failed:
            continue
        out.append(f"# {job.id} {job.name} ({job.account.slug})")
        out.append(f"{normalise_schedule(job.spec.schedule)} root {LIVE}/{WRAPPER} {job.id}")
    return ("\n".join(out) + "\n").encode()


def job_file(job: Item[CronSpec]) -> bytes:
    """The job as the wrapper reads it: one value a line, the command last."""
    spec = job.spec
    values = (
        job.account.unix_user,
        home(job.account.slug),
        str(spec.timeout_seconds),
        spec.output,
        spec.mail_to or "",
        job.name,
        spec.command,
    )
    return ("\n".join(values) + "\n").encode()


class CronOperations:
    """What the panel's cron endpoints and tasks run on a web host (``panel.cron``)."""

    def run_now(self, job_id: int) -> Command:
        """Run the job once through the wrapper (as cron would, under the same lock) and
        print its run record, the output up to the kept limit (see ``runs``)."""
        return Command.script(RUN_NOW_SCRIPT, str(job_id), str(OUTPUT_LIMIT))

    def runs(self, job_id: int, limit: int = KEEP_RUNS) -> Command:
        """The job's last runs, newest first, each with the tail of its output."""
        return Command.script(RUNS_SCRIPT, str(job_id), str(max(1, min(limit, 100))))

    def parse_runs(self, text: str) -> list[dict[str, Any]]:
        """Run records as plain values: ``started_ms``, ``ended_ms``, ``exit_code``, ``how``
        (cron or now), ``output_bytes``, ``notes``, ``output`` (the tail)."""
        runs: list[dict[str, Any]] = []
        current: dict[str, Any] | None = None
        for line in text.splitlines():
            word, _, rest = line.partition(" ")
            if word == "run":
                parts = rest.split()
                if len(parts) != 6 or not all(p.lstrip("-").isdigit() for p in parts[1:4]):
                    current = None
                    continue
                current = {
                    "id": parts[0],
                    "started_ms": int(parts[1]),
                    "ended_ms": int(parts[2]),
                    "exit_code": int(parts[3]),
                    "how": parts[4],
                    "output_bytes": int(parts[5]) if parts[5].isdigit() else 0,
                    "notes": [],
                    "output": "",
                }
            elif current is None:
                continue
            elif word == "note":
                current["notes"].append(rest)
            elif word == "output":
                current["output"] = base64.b64decode(rest or b"").decode("utf-8", "replace")
            elif word == "end":
                runs.append(current)
                current = None
        return runs


class Cron(Provisioner):
    """Members' cron jobs on web hosts (kind ``cron_job``, attached to a site)."""

    name = "cron"
    roles = ("web",)
    kinds = (ObjectKind(KIND, "web", spec=CronSpec, placement="site", title="cron job"),)
    messages = {
        "fr": {
            "cron job": "tâche planifiée",
            "five cron fields (minute hour day-of-month month day-of-week; numbers, "
            "ranges, steps, lists, *, month and day names) or @hourly, @daily, @weekly, "
            "@monthly, @yearly (@reboot is refused); in the web host's time zone": "cinq "
            "champs cron (minute heure jour-du-mois mois jour-de-la-semaine ; nombres, "
            "intervalles, pas, listes, *, noms de mois et de jours) ou @hourly, @daily, "
            "@weekly, @monthly, @yearly (@reboot est refusé) ; à l'heure de l'hôte web",
            "one shell line, run by /bin/sh as the account's unix user (so it reaches "
            "only what that user may), in the account's home, with a clean environment; '%' "
            "is a plain percent sign (not cron's newline)": "une ligne de shell, lancée par "
            "/bin/sh comme utilisateur unix du compte (elle n'atteint que ce qu'il peut "
            "atteindre), dans le dossier du compte, avec un environnement propre ; « % » "
            "est un simple signe pour cent (pas le saut de ligne de cron)",
            "keep: the last runs' output is shown in the panel; mail: also mailed "
            "(when there is output), and kept when the host has no sendmail": "keep : la "
            "sortie des dernières exécutions est montrée dans le panneau ; mail : elle est "
            "aussi envoyée par courriel (s'il y a une sortie), et gardée si l'hôte n'a pas "
            "de sendmail",
            "where output goes when output=mail": "où va la sortie quand output=mail",
            "a run still going after this is stopped": "une exécution qui dure encore après "
            "ce délai est arrêtée",
            "Output": "Sortie",
            "Mail to": "Envoyer à",
            "Enabled": "Active",
            "Timeout seconds": "Durée maximale (secondes)",
        }
    }
    facts = (LINK_FACT,)

    def operations(self) -> CronOperations:
        return CronOperations()

    def render(self, state: DesiredState) -> Sequence[ManagedFile]:
        items = jobs(state)
        if all(j.deleting for j in items):
            return []  # a web host with no job carries nothing of this plugin
        files = [
            ManagedFile(CRONTAB, crontab(state)),
            ManagedFile(WRAPPER, WRAPPER_SCRIPT.encode(), 0o755),
        ]
        files += [
            ManagedFile(f"cron/jobs/{j.id}", job_file(j), 0o600) for j in items if not j.deleting
        ]
        return files

    def object_of(self, path: str) -> ObjectRef | None:
        m = _JOB_FILE.fullmatch(path)
        return (KIND, int(m.group(1))) if m else None

    def blame(self, message: str) -> set[ObjectRef]:
        return {(KIND, int(m)) for m in re.findall(r"cron job (\d+)", message)}

    def validate(self, state: DesiredState) -> Sequence[Sequence[str]]:
        return [["sh", "-c", CHECK_SCRIPT]]

    def steps(self, state: DesiredState, facts: Facts, changed: set[str]) -> Sequence[Step]:
        """The /etc/cron.d link once (after the swap: it points into the live tree), gone
        with the last job; a deleted job's run records."""
        seen = facts[LINK_FACT]
        items = jobs(state)
        live = {str(j.id) for j in items if not j.deleting}
        target = f"{LIVE}/{CRONTAB}"
        steps: list[Step] = []
        if live and "runs" not in seen:
            steps.append(Step("cron run records", ("install", "-d", "-m", "0700", RUNS_DIR)))
        if live and f"link {target}" not in seen:
            steps.append(
                Step(
                    f"link {CRON_D}",
                    ("ln", "-sfn", "--", target, CRON_D),
                    phase="after",
                )
            )
        if not live and f"link {target}" in seen:
            steps.append(Step(f"remove {CRON_D}", ("rm", "-f", "--", CRON_D), phase="after"))
        gone = sorted(
            int(line[4:])
            for line in seen
            if line.startswith("job ") and line[4:].isdigit() and line[4:] not in live
        )
        if gone:
            steps.append(
                Step(
                    "run records of deleted cron jobs",
                    ("rm", "-rf", "--", *(f"{RUNS_DIR}/{i}" for i in gone)),
                    phase="after",
                    object_ids=tuple((KIND, i) for i in gone if any(j.id == i for j in items)),
                )
            )
        return steps
