"""A real browser on the run page: headless Debian chromium driven by Playwright.

It opens the page while a run is going, sees tasks change colour as they finish without
the page reloading, opens a running task and sees its log tail grow, and writes
screenshots under the test's temp dir (with CONDUCTOR_SCREENSHOT_DIR set, there too: the
README's picture is made this way). It skips only where no chromium is installed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conductor.state.store import Store
from tests.testing.web import CHROMIUM_ARGS, chromium, serving, start_detached

pytest.importorskip("starlette", reason="the web extra is not installed: pip install '.[web]'")
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed: pip install '.[test]'")  # fmt: skip
BROWSER = chromium()
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no chromium on this machine (apt-get install chromium)"
)

LIVE = """
version: 1
name: storefront
concurrency: 2
groups:
  schema: {description: database}
  api: {depends_on: [schema]}
  ui: {depends_on: [api]}
tasks:
  tables: {run: "echo creating tables; sleep 1.5", group: schema}
  seed: {run: "echo seeding; sleep 1", group: schema, depends_on: [tables]}
  users-api: {run: "echo users; sleep 1.5", group: api}
  orders-api: {run: "for i in 1 2 3 4 5 6; do echo order step $i; sleep 0.5; done", group: api}
  pages: {run: "echo pages; sleep 1", group: ui}
  checkout: {run: "echo checkout; sleep 1", group: ui, depends_on: [orders-api]}
"""


def node_state(page: sync_api.Page, task: str) -> str:
    return str(page.get_attribute(f"#dag g.node[data-task='{task}']", "class"))


def test_the_run_page_follows_a_live_run_without_reloading(repo: Path, tmp_path: Path) -> None:
    Store(repo / ".conductor" / "state.db").close()
    shots = [tmp_path / "run.png", tmp_path / "task.png"]
    with serving(repo) as served, sync_api.sync_playwright() as pw:
        run = start_detached(repo, LIVE, "storefront.yaml")
        browser = pw.chromium.launch(executable_path=BROWSER, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{served.base}runs/{run}")
            page.evaluate("window.__notReloaded = true")
            before = node_state(page, "checkout")
            assert "st-succeeded" not in before, before
            # the middle of the run: a task of the api group at work
            page.wait_for_selector("#dag g.node.st-running[data-task$='-api']", timeout=30_000)
            page.screenshot(path=str(shots[0]), full_page=True)

            task = browser.new_page(viewport={"width": 1280, "height": 900})
            task.goto(f"{served.base}runs/{run}/tasks/orders-api")
            task.wait_for_function(
                "document.getElementById('log').textContent.includes('order step 5')",
                timeout=30_000)  # fmt: skip
            task.screenshot(path=str(shots[1]), full_page=True)

            page.wait_for_selector("#dag g.node.st-succeeded[data-task='checkout']",
                                   timeout=60_000)  # fmt: skip
            page.wait_for_selector("body[data-ended='1']", timeout=30_000)
            assert page.evaluate("window.__notReloaded") is True  # updated in place
            assert "st-succeeded" in node_state(page, "tables")
            assert page.locator("#events li").count() > 10
            assert "run_finished" in page.inner_text("#events")
        finally:
            browser.close()
    for shot in shots:
        assert shot.stat().st_size > 10_000, shot
    keep = os.environ.get("CONDUCTOR_SCREENSHOT_DIR")
    if keep:
        for shot in shots:
            shutil.copy(shot, Path(keep) / shot.name)
