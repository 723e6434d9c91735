"""The main job on a fresh clone with nothing beside it (no ../shared, as on a laptop or after `pip install`): the
package is copied into an empty temporary folder and `python -m bertkit demo --quick` runs there, in a subprocess.
It must train on the real data shipped in the package, say so, use examples in the shipped data's language, and
keep a console that reads like the report (issue 22)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bertkit.demo.plan import KOREAN_SENTIMENT_EXAMPLES

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("fresh") / "bertkit"  # ../shared beside it does not exist
    shutil.copytree(REPO / "bertkit", root / "bertkit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, root / name)
    out = root / "demo-output"
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-m", "bertkit", "demo", "--quick", "--out", str(out)], cwd=root, env=env,
                          capture_output=True, timeout=600)  # bytes: text mode would turn a bar's \r into \n
    stdout, stderr = done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
    assert done.returncode == 0, stderr[-3000:]
    return {"root": root, "out": out, "stdout": stdout, "console": stdout + stderr,
            "summary": json.loads((out / "summary.json").read_text(encoding="utf-8"))}


def test_the_clone_has_no_shared_data_beside_it(fresh_clone):
    root = fresh_clone["root"]
    assert not (root.parent / "shared").exists() and not (root / "shared").exists()
    # the package that ran is the clone's (its shipped slices are the ones read)
    shipped = root / "bertkit" / "samples" / "slices"
    for task in ("sentiment", "ner", "qa"):
        assert str(shipped) in fresh_clone["summary"]["data"][task]["source"], task


def test_it_trains_on_the_shipped_slices_and_says_so(fresh_clone):
    summary, printed = fresh_clone["summary"], fresh_clone["stdout"]
    assert summary["data_source"] == "package"
    assert "shipped in the package" in summary["data_used"] and "../shared/data is not beside this checkout" in printed
    languages = {task: summary["data"][task]["language"] for task in ("sentiment", "ner", "qa")}
    assert languages == {"sentiment": "Korean", "ner": "Korean", "qa": "English"}
    for task, source in (("sentiment", "NSMC"), ("ner", "KLUE-NER"), ("qa", "SQuAD")):
        assert source in summary["data"][task]["source"], task
        train = Path(summary["data"][task]["train"])
        assert train.parent == fresh_clone["out"] / "data" and train.is_file()
        assert f"--train {train}" in printed  # the command printed for the step reads the file it trained on
    # the new sentences it labels are in the data's language
    assert [e["text"] for e in summary["sentiment_examples"]] == KOREAN_SENTIMENT_EXAMPLES
    for task, key in (("sentiment", "accuracy"), ("ner", "f1"), ("qa", "f1")):
        assert key in summary[task], task
        assert summary["learning_curves"][task], task
    page = (fresh_clone["out"] / "report.html").read_text(encoding="utf-8")
    assert "shipped in the package" in page and "learning curves" in page


def test_the_console_reads_like_the_report(fresh_clone):
    console = fresh_clone["console"]
    lines = console.count("\n")  # a progress bar redraws itself on one line (carriage returns)
    assert lines < 80, console
    for number in range(1, 10):
        assert len(re.findall(rf"^\[{number}/9\] ", console, re.M)) == 1
    assert console.count("    alone: bertkit ") == 9
    assert "Training Loss" not in console  # the Trainer's rows went to metrics.jsonl
    assert "newly initialized" not in console  # the library's warnings went to the report
    rows = [json.loads(line) for line in (fresh_clone["out"] / "sentiment" / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("split") == "train" and "loss" in r for r in rows)
    assert fresh_clone["summary"]["library_messages"]  # ... and the report lists them
