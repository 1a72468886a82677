"""The Snakemake report as a reader sees it: opened in headless Chromium (driven by Playwright),
on the test-scale run; and built after a narrower command for what that command made.

The browser is Debian's Chromium (``/usr/bin/chromium``; .ci/run installs it). Where it is
absent the browser test skips and says why, except under ``BACKTRACK_REQUIRE_BROWSER=1`` (CI),
where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_workflow import ROOT, SNAKEMAKE

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Chromium as root in a closed network: no sandbox, no background connections (each refused
#: connection costs time), a fresh profile.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _smk(work: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
           "--workflow-profile", "none", "--cores", "2", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def report(workflow_run) -> Path:
    work, _, _ = workflow_run
    proc = _smk(work, "--report", "results/report.html")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work / "results/report.html"


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("BACKTRACK_REQUIRE_BROWSER") == "1":
            pytest.fail("BACKTRACK_REQUIRE_BROWSER=1 but no chromium on PATH")
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _open(browser, report: Path, category: str):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(report.as_uri())
    page.get_by_role("link", name=category).click()
    return page


def _view(page, entry: str):
    """Click an entry's eye icon; the report shows the file in an embedded frame."""
    page.locator("tr", has_text=entry).locator("a[iconname=eye]").click()
    page.wait_for_timeout(300)


def _table_frame(page, title: str):
    frames = [f for f in page.frames[1:] if title in f.inner_text("body")]
    assert frames, f"no frame shows {title!r}: {[f.url[:60] for f in page.frames]}"
    return frames[0]


@pytest.mark.parametrize(
    ("category", "entry", "title", "rows", "cell"),
    [
        ("Table 1", "results/table1.html", "Table 1: unsafe answers", 4, r"^\d+\.\d%"),
        ("Table 2", "results/table2.html", "Table 2: attack success", 4, r"^\d+\.\d% \["),
        ("Table 2", "results/attack_budget.html", "Attack success against", 12, r"^\d+/\d+ = "),
        ("Claims", "results/claims.html", "The paper's claims", None, r"^\d+\.\d% \[.*\] \(\d+\)$"),
    ],
)
def test_the_report_shows_each_table_as_a_readable_page(
    report, browser, category, entry, title, rows, cell
):
    page = _open(browser, report, category)
    _view(page, entry)
    frame = _table_frame(page, title)
    body = frame.locator("table tbody tr")
    n = body.count()
    assert n == rows if rows else n > 5
    head = frame.locator("table thead th").all_inner_texts()
    assert len(head) >= 4
    cells = frame.locator("table tbody td").all_inner_texts()
    assert len(cells) == n * len(head)
    assert any(re.search(cell, c) for c in cells), cells[: len(head)]
    # the guide to the columns sits above the table
    assert "95%" in frame.locator("p.caption").first.inner_text()
    page.close()


def test_the_report_shows_figures_and_readable_job_parameters(report, browser):
    page = _open(browser, report, "Table 1")
    _view(page, "results/figures/table1.png")
    assert page.locator("img[src^='data:image/png']").count() >= 1
    page.locator("tr", has_text="results/table1.html").locator(
        "a[iconname=information-circle]"
    ).click()
    text = page.inner_text("body")
    params = text[text.index("JOB PARAMETERS") :][:2000]
    assert "cells=[[tiny, baseline, 0, sft, advbench" in params
    assert '\\"' not in params  # the JSON params' quotes used to show escaped
    page.close()


def test_report_after_a_narrower_command_holds_what_it_built(workflow_run, tmp_path):
    """After command 1 (Table 1 only), plain --report reports what exists instead of stopping
    on an output of rule all that was never built; with the command's target it does too. A
    real run (--report-after-run) still builds everything first."""
    ref, _, _ = workflow_run
    work = tmp_path / "run"
    shutil.copytree(ref, work, symlinks=True, ignore=shutil.ignore_patterns(".snakemake/locks"))
    for name in ("claims.csv", "claims.html", "report.html"):
        (work / "results" / name).unlink(missing_ok=True)
    for targets, rest in (([], True), (["results/table1.csv"], False)):
        proc = _smk(work, "--report", "results/report.html", *targets)
        assert proc.returncode == 0, proc.stderr[-3000:]
        html = (work / "results/report.html").read_text()
        assert "table1.html" in html and "table1.png" in html
        assert "claims.csv" not in html
        assert ("table2.html" in html) == rest  # plain --report: everything else that exists
    # A dry run of a real run with --report-after-run still plans the claims (it would build
    # them, then report; the dry run's report step stops on the file it did not build).
    plan = _smk(work, "-n", "--report", "results/report.html", "--report-after-run")
    assert "rule claims:" in plan.stdout + plan.stderr
