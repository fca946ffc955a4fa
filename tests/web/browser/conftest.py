"""A real browser (Debian's chromium, driven by Playwright) against the panel served over
HTTP by uvicorn, with real test hosts from the integration suite (set KONBIT_LAB=<n> to
give this run its own bridge)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from panel.testhosts import Lab
from tests.integration.conftest import (  # noqa: F401 - fixtures shared with the integration tests
    Panel,
    bk1,
    db_url,
    panel,
    panel_key,
    web1,
)


@pytest.fixture(scope="session")
def lab(panel_key: str) -> Iterator[Lab]:  # noqa: F811 - this directory's own lab
    """Its own bridge and subnet: in one pytest run the integration tests' lab is up at the
    same time, and two labs on one bridge hand out the same addresses."""
    n = int(os.environ.get("KONBIT_LAB", "0")) + 10
    with Lab(bridge=f"thkb{n}", subnet=f"10.77.{20 + n}", veth_prefix=f"k{n}-") as lab:
        lab.ensure_base()
        yield lab

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[3] / "artifacts" / "web"


@pytest.fixture(scope="session")
def live_url(app: Any) -> Iterator[str]:
    """The panel on a real port, as a browser reaches it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


@pytest.fixture(scope="session")
def chromium(web1: Any) -> Iterator[Any]:  # noqa: F811 - the imported fixture
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `./dev test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # Every *.test name resolves to the web test host: the browser opens member sites
        # by their own names, as a visitor would.
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[f"--host-resolver-rules=MAP *.test {web1.address}", "--no-proxy-server"],
        )
        yield browser
        browser.close()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Any:
    """save(page, name): a screenshot under artifacts/web/ (ignored by git)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    test = request.node.name.replace("[", "-").replace("]", "")

    def save(page: Any, name: str) -> Path:
        path = ARTIFACTS / f"{test}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save
