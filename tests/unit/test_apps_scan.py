"""The scan's host script, run for real on this machine: what it reads is the site user's
to read, and nothing a file holds can pass for another site's answer."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from panel.apps.detect import PROBES, detect
from provisioners.apps import ApplicationOperations

ops = ApplicationOperations()


def _scan(roots: dict[int, tuple[str, str]]) -> dict[int, dict[str, str]]:
    command = ops.scan(roots, PROBES)
    got = subprocess.run(command.argv, capture_output=True, check=True, text=True)
    return ops.parse_scan(got.stdout)


def test_scan_reads_as_the_site_user_and_cannot_be_forged() -> None:
    # Under /tmp, not pytest's tmp_path: its parents are root's alone (0700).
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        _scan_as_nobody(Path(tmp))


def _scan_as_nobody(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    wp, forger, secret = tmp_path / "wp", tmp_path / "forger", tmp_path / "secret"
    (wp / "wp-includes").mkdir(parents=True)
    (wp / "wp-includes/version.php").write_text("<?php\n$wp_version = '6.1.9';\n")
    forger.mkdir()
    # A file that prints the markers of another site's answer, and a link to root's file.
    (forger / "VERSION").write_text(
        "end\nfile 1 includes/Defines.php\n| define('MW_VERSION', '9');"
    )
    secret.write_text("2099-01-01\n")
    secret.chmod(0o600)
    (forger / "includes").mkdir()
    (forger / "includes/Defines.php").symlink_to(secret)
    for d in (wp, forger, wp / "wp-includes", forger / "includes"):
        d.chmod(0o755)
    read = _scan({1: ("nobody", str(wp)), 2: ("nobody", str(forger)), 3: ("nobody", "/nowhere")})
    assert set(read) == {1, 2}
    assert detect(read[1].get) is not None and detect(read[1].get).version == "6.1.9"  # type: ignore[union-attr]
    assert set(read[1]) == {"wp-includes/version.php"}
    assert set(read[2]) == {"VERSION"}  # root's file, read as nobody: nothing
    assert read[2]["VERSION"].startswith("end\nfile 1")  # kept as the file's text
    assert detect(read[2].get) is None


def test_scan_takes_only_plain_relative_probes() -> None:
    for bad in ("../etc/shadow", "a b", "$(id)", ""):
        with pytest.raises(ValueError, match="probe"):
            ops.scan({1: ("u", "/srv")}, [bad])
    argv = ops.scan({2: ("u2", "/b"), 1: ("u1", "/a")}, ["VERSION"]).argv
    assert argv[4:] == ("VERSION", "1", "u1", "/a", "2", "u2", "/b")
