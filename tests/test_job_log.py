"""Job logs read as text: progress bars become one line per redraw (backtrack.smk.LineLog)."""

from __future__ import annotations

import io

from backtrack.smk import LineLog
from tqdm import tqdm


def test_each_progress_redraw_is_a_line_of_its_own():
    buf = io.StringIO()
    log = LineLog(buf)
    log.write("start\n")
    for _ in tqdm(range(3), file=log, desc="gen", mininterval=0, ascii=True):
        pass
    log.write("\rLoading: 0%\rLoading: 100%\n")
    text = buf.getvalue()
    assert "\r" not in text and "\n\n" not in text
    lines = text.splitlines()
    assert lines[0] == "start"
    assert [ln.split(":")[0] for ln in lines[1:]] == ["gen"] * 5 + ["Loading"] * 2
    assert lines[-1] == "Loading: 100%"
    assert log.isatty() is False


def test_the_test_scale_run_logs_have_no_carriage_returns(workflow_run):
    work, _, _ = workflow_run
    logs = sorted((work / "logs").rglob("*.log"))
    assert len(logs) > 20
    bad = [p.relative_to(work) for p in logs if "\r" in p.read_text(errors="replace")]
    assert not bad, bad
