"""`recommender run` end to end: every notebook on quick synthetic data, then the index page.

Also: a failing notebook stops the run with its name and cell, and the last good reports stay.
"""

import json
import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from recommender.models import MODELS
from recommender.runner import NotebookFailed, notebook_paths, run_notebooks

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    reports = tmp_path_factory.mktemp("reports")
    return run_notebooks(quick=True, reports_dir=reports, progress=False)


def test_every_notebook_is_published_as_html(quick_run):
    names = [p.name for p in notebook_paths()]
    assert [n["name"] for n in quick_run.notebooks] == names
    for path in notebook_paths():
        assert (quick_run.reports_dir / f"{path.stem}.html").stat().st_size > 0, path.name
        assert (quick_run.reports_dir / "metrics" / f"{path.stem}.json").is_file(), path.name


def test_index_puts_every_registered_model_in_the_comparison_table(quick_run):
    page = (quick_run.reports_dir / "index.html").read_text()
    comparison, rest = page.split("<h2>Notebooks</h2>")
    assert "<h2>Model comparison</h2>" in comparison
    for name in MODELS:
        assert f"<td>{name}</td>" in comparison, name
    for path in notebook_paths():
        assert f"href='{path.stem}.html'" in rest
    assert "total seconds" in rest and "version: tensorflow" in rest
    assert "per-user 20% (seeded)" in rest  # the split the quick run used


def test_comparison_metrics_list_every_model_with_intervals(quick_run):
    doc = json.loads((quick_run.reports_dir / "metrics" / "07_model_comparison.json").read_text())
    assert [row["model"] for row in doc["table"]] == list(MODELS)
    assert all(row["ndcg@10_low"] <= row["ndcg@10"] <= row["ndcg@10_high"]
               for row in doc["table"])


def _write_notebook(path, *sources):
    nb = new_notebook(cells=[new_code_cell("seed = 0", metadata={"tags": ["parameters"]}),
                             *(new_code_cell(s) for s in sources)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)


def test_failing_notebook_names_notebook_and_cell_and_keeps_last_reports(tmp_path):
    notebooks, reports = tmp_path / "notebooks", tmp_path / "reports"
    notebooks.mkdir()
    _write_notebook(notebooks / "01_ok.ipynb", "x = 1")
    run_notebooks(reports_dir=reports, notebooks_dir=notebooks, progress=False)
    before = {p: p.read_bytes() for p in reports.rglob("*") if p.is_file()}
    assert reports / "index.html" in before and reports / "01_ok.html" in before

    _write_notebook(notebooks / "02_fail.ipynb", "y = 2", "raise ValueError('boom')")
    message = r"notebook 02_fail\.ipynb failed in cell \d+: ValueError: boom"
    with pytest.raises(NotebookFailed, match=message):
        run_notebooks(reports_dir=reports, notebooks_dir=notebooks, progress=False)
    after = {p: p.read_bytes() for p in reports.rglob("*")
             if p.is_file() and "failed" not in p.relative_to(reports).parts}
    assert after == before
    assert (reports / "failed" / "02_fail.ipynb").is_file()
    assert not any(re.match(r"\.staging-", p.name) for p in reports.iterdir())
