"""`recommender run` end to end: every notebook on quick synthetic data, then the index page.

Also: a failing notebook stops the run with its name and cell, and the last good reports stay.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from recommender.core.config import PROJECT_ROOT
from recommender.models import MODELS
from recommender.reporting.conclusions import conclusions_for
from recommender.reporting.guide import NOTEBOOKS, ORIGINS, notebook_of
from recommender.reporting.runner import NotebookFailed, notebook_paths, run_notebooks

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


# What a reader must never see in a report: where the machine keeps things, and start-up logs.
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:home|root|tmp|work|var|usr|opt|Users)/[\w.-]+")
NOISE = ("absl::InitializeLog", "oneDNN custom operations", "cuda_platform", "cudart_stub",
         "cpu_feature_guard", "TqdmWarning", "IProgress not found", ".staging-",
         "without encryption")


def test_reports_hold_no_machine_paths_no_start_up_log_and_offline_math(quick_run):
    pages = sorted(quick_run.reports_dir.glob("*.html"))
    assert len(pages) == len(notebook_paths()) + 1
    for page in pages:
        text = page.read_text()
        for needle in (str(PROJECT_ROOT), str(quick_run.reports_dir), sys.prefix):
            assert needle not in text, (page.name, needle)
        assert not ABSOLUTE_PATH.search(text), (page.name, ABSOLUTE_PATH.search(text))
        for noise in NOISE:
            assert noise not in text, (page.name, noise)
        assert "mathjax" not in text.lower() and "<script src=" not in text, page.name
    regression = (quick_run.reports_dir / "02_regression_model.html").read_text()
    assert "<math" in regression and "\\hat{y}" not in regression  # formulas as MathML


def _executed_conclusions(path: Path) -> str:
    """The Markdown the executed notebook's last cell displayed."""
    last = nbformat.read(path, as_version=4).cells[-1]
    assert "what_this_shows" in last.source
    (output,) = [o for o in last.outputs if "text/markdown" in o.get("data", {})]
    return output["data"]["text/markdown"]


def test_every_notebook_concludes_from_the_metrics_it_recorded(quick_run):
    """What a notebook's page says it found is the conclusions function applied to the very
    metrics file the run recorded, so no rerun can leave prose that its numbers contradict."""
    for path in notebook_paths():
        recorded = json.loads((quick_run.reports_dir / "metrics" / f"{path.stem}.json")
                              .read_text())
        shown = _executed_conclusions(quick_run.reports_dir / path.name)
        assert shown == conclusions_for(path.stem, recorded), path.name
        assert shown.startswith("- ") and len(shown.splitlines()) >= 2, (path.name, shown)
        page = (quick_run.reports_dir / f"{path.stem}.html").read_text()
        assert "What this shows" in page and "what_this_shows(" not in page, path.name


def test_pages_hide_the_plumbing_and_link_back_to_the_index(quick_run):
    for path in notebook_paths():
        page = (quick_run.reports_dir / f"{path.stem}.html").read_text()
        source = nbformat.read(path, as_version=4)
        heading = source.cells[0].source.splitlines()[0].lstrip("# ")
        assert f"<title>{heading} · Movie recommender lab</title>" in page, path.name
        assert page.count("href=\"index.html\"") == 2, path.name  # top and bottom
        for hidden in ("# Parameters", "record_metrics(", "model.save(", "reports_dir = "):
            assert hidden not in page, (path.name, hidden)


def test_index_opens_with_what_the_run_is_then_the_verdict_then_the_origins(quick_run):
    page = (quick_run.reports_dir / "index.html").read_text()
    run, picture, words, origins, table, glossary, notebooks = (
        page.index("<b>This run:</b>"), page.index("<img src='figures/index_comparison.png'"),
        page.index("<strong>Top-N lists"), page.index("<h2>Where the models come from"),
        page.index("<table class='comparison'>"), page.index("What the columns mean"),
        page.index("<h2>Notebooks</h2>"))
    assert run < picture < words < origins < table < glossary < notebooks
    assert re.search(r"run on \d{4}-\d\d-\d\d \d\d:\d\d", page) and "at commit " in page
    assert (quick_run.reports_dir / "figures" / "index_comparison.png").stat().st_size > 0
    assert ">nan<" not in page.lower() and "None" not in page


def test_index_links_every_model_to_the_notebook_that_explains_it(quick_run):
    page = (quick_run.reports_dir / "index.html").read_text()
    comparison, rest = page.split("<h2>Notebooks</h2>")
    for name in MODELS:
        assert f"<td><a href='{notebook_of(name)}.html'>{name}</a></td>" in comparison, name
    for origin in ORIGINS:
        assert f"{origin.number} {origin.name}" in comparison
    for guide in NOTEBOOKS:
        assert f"href='{guide.stem}.html'>{guide.stem[:2]} · {guide.title}</a>" in rest
        assert guide.description.replace("'", "&#x27;") in rest
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
    run_notebooks(dataset="synthetic", reports_dir=reports, notebooks_dir=notebooks,
                  progress=False)
    before = {p: p.read_bytes() for p in reports.rglob("*") if p.is_file()}
    assert reports / "index.html" in before and reports / "01_ok.html" in before

    _write_notebook(notebooks / "02_fail.ipynb", "y = 2", "raise ValueError('boom')")
    message = r"notebook 02_fail\.ipynb failed in cell \d+: ValueError: boom"
    with pytest.raises(NotebookFailed, match=message):
        run_notebooks(dataset="synthetic", reports_dir=reports, notebooks_dir=notebooks,
                      progress=False)
    after = {p: p.read_bytes() for p in reports.rglob("*")
             if p.is_file() and "failed" not in p.relative_to(reports).parts}
    assert after == before
    assert (reports / "failed" / "02_fail.ipynb").is_file()
    assert not any(re.match(r"\.staging-", p.name) for p in reports.iterdir())


def _sleeping_notebooks(folder: Path) -> None:
    """One notebook whose kernel writes its pid, then works for a minute."""
    folder.mkdir()
    _write_notebook(folder / "01_sleep.ipynb",
                    "import os, pathlib, time\n"
                    "pathlib.Path(os.environ['PID_FILE']).write_text(str(os.getpid()))\n"
                    "time.sleep(60)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_run_and_its_kernel_within_seconds(tmp_path, signum):
    notebooks, reports, pid_file = tmp_path / "notebooks", tmp_path / "reports", tmp_path / "pid"
    _sleeping_notebooks(notebooks)
    code = ("import sys; from recommender.reporting.runner import run_notebooks; "
            f"run_notebooks(dataset='synthetic', reports_dir={str(reports)!r}, "
            f"notebooks_dir={str(notebooks)!r}, "
            "progress=False)")
    runner = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PID_FILE": str(pid_file)})
    deadline = time.monotonic() + 120
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pid_file.exists(), "the kernel never started"
    kernel = int(pid_file.read_text())
    runner.send_signal(signum)
    start = time.monotonic()
    runner.wait(timeout=30)
    assert time.monotonic() - start < 10
    assert runner.returncode != 0
    time.sleep(0.5)
    assert not _alive(kernel), "the kernel outlived the run"
    assert not list(reports.glob(".staging-*"))
    assert not (reports / "index.html").exists()


def test_a_missing_release_is_fetched_and_offline_says_what_to_do(tmp_path, monkeypatch):
    import urllib.error

    from recommender.core.errors import DataError

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    notebooks, reports = tmp_path / "notebooks", tmp_path / "reports"
    notebooks.mkdir()
    _write_notebook(notebooks / "01_ok.ipynb", "x = 1")
    with pytest.raises(DataError) as info:
        run_notebooks(dataset="ml-latest-small", data_dir=str(tmp_path / "empty"),
                      reports_dir=reports, notebooks_dir=notebooks, progress=False)
    message = str(info.value)
    assert len(message.splitlines()) == 1 and "could not download" in message
    assert f"unzip it into {tmp_path / 'empty' / 'ml-latest-small'}" in message
    assert not reports.exists() or not list(reports.iterdir())


def test_a_run_prints_no_kernel_warning_and_no_start_up_log(tmp_path, capfd):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _write_notebook(notebooks / "01_tf.ipynb", "import recommender, tensorflow as tf\nx = tf.ones(2)")
    run_notebooks(dataset="synthetic", reports_dir=tmp_path / "reports",
                  notebooks_dir=notebooks, progress=False)
    err = capfd.readouterr().err
    assert not [noise for noise in (*NOISE, "KeyboardInterrupt caught") if noise in err], err
    page = (tmp_path / "reports" / "01_tf.html").read_text()
    assert not [noise for noise in NOISE if noise in page]


def test_two_jobs_run_notebooks_side_by_side_and_the_comparison_after_them(tmp_path):
    # 01 and 02 each wait (up to a minute) for the other to have started: only side by side
    # do both finish; 03 finds what both wrote, so it started after them
    notebooks, reports, marks = tmp_path / "notebooks", tmp_path / "reports", tmp_path / "marks"
    notebooks.mkdir()
    marks.mkdir()
    for mine, other in (("01", "02"), ("02", "01")):
        _write_notebook(notebooks / f"{mine}_side.ipynb",
                        "import pathlib, time\n"
                        f"marks = pathlib.Path({str(marks)!r})\n"
                        f"(marks / 'started-{mine}').touch()\n"
                        "deadline = time.monotonic() + 60\n"
                        f"while not (marks / 'started-{other}').exists():\n"
                        "    assert time.monotonic() < deadline, 'ran alone'\n"
                        "    time.sleep(0.1)\n"
                        "import os\n"
                        f"(marks / 'threads-{mine}').write_text(os.environ['OMP_NUM_THREADS'])\n"
                        f"(marks / 'done-{mine}').touch()")
    # alone, the comparison keeps the thread pools the run was given
    _write_notebook(notebooks / "03_last.ipynb",
                    f"import os, pathlib\nmarks = pathlib.Path({str(marks)!r})\n"
                    "assert (marks / 'done-01').exists() and (marks / 'done-02').exists()\n"
                    f"assert os.environ.get('OMP_NUM_THREADS') == {os.environ.get('OMP_NUM_THREADS')!r}")
    result = run_notebooks(dataset="synthetic", reports_dir=reports, notebooks_dir=notebooks,
                           progress=False, jobs=2)
    assert [n["name"] for n in result.notebooks] == ["01_side.ipynb", "02_side.ipynb",
                                                     "03_last.ipynb"]
    assert all((reports / f"{n}.html").is_file() for n in ("01_side", "02_side", "03_last"))
    # side by side, each kernel's thread pools are held to its share of the cores
    share = str(max(1, (os.cpu_count() or 1) // 2))
    assert [(marks / f"threads-{n}").read_text() for n in ("01", "02")] == [share, share]


def test_with_two_jobs_a_failure_stops_the_run_and_keeps_the_last_reports(tmp_path):
    notebooks, reports = tmp_path / "notebooks", tmp_path / "reports"
    notebooks.mkdir()
    _write_notebook(notebooks / "01_fail.ipynb", "raise ValueError('boom')")
    _write_notebook(notebooks / "02_slow.ipynb", "import time\ntime.sleep(60)")
    _write_notebook(notebooks / "03_last.ipynb", "x = 1")
    start = time.monotonic()
    with pytest.raises(NotebookFailed, match=r"notebook 01_fail\.ipynb failed"):
        run_notebooks(dataset="synthetic", reports_dir=reports, notebooks_dir=notebooks,
                      progress=False, jobs=2)
    assert time.monotonic() - start < 45  # 02's kernel was stopped, not waited for
    assert not (reports / "index.html").exists()
    assert not list(reports.glob(".staging-*"))


def test_a_run_never_moves_the_process_and_kernels_start_in_the_run_folder(tmp_path, monkeypatch):
    # Notebooks run side by side in threads, which share one working folder: a run that
    # changed it (papermill's cwd) let one notebook's end send another's kernel, and its
    # ../reports, beside the checkout. Kernels get their folder themselves.
    chdir = os.chdir

    def stay(path):  # papermill re-enters the current folder to read; anything else fails
        if os.path.realpath(path) != os.path.realpath(tmp_path):
            raise AssertionError(f"the run changed the working folder to {path}")
        chdir(path)

    from papermill.iorw import papermill_io

    monkeypatch.chdir(tmp_path)
    # papermill's process-wide file handler left at another folder by an earlier run
    # (side-by-side notebooks restore its folder out of order)
    handler = papermill_io.get_handler("local")
    monkeypatch.setattr(handler, "_cwd", str(tmp_path.parent))
    monkeypatch.setattr(os, "chdir", stay)
    notebooks, reports = tmp_path / "notebooks", tmp_path / "reports"
    notebooks.mkdir()
    for name in ("01_a", "02_b", "03_c"):
        _write_notebook(notebooks / f"{name}.ipynb",
                        "import pathlib\n"
                        f"pathlib.Path('../reports/{name}.txt').write_text('written')")
    run_notebooks(dataset="synthetic", reports_dir=reports, notebooks_dir=notebooks,
                  progress=False, jobs=2)
    assert all((reports / f"{n}.txt").read_text() == "written" for n in ("01_a", "02_b", "03_c"))
    assert not (tmp_path.parent / "reports").exists() and not list(tmp_path.glob("*.txt"))


def test_side_by_side_notebooks_start_in_the_listed_order_and_unlisted_ones_last():
    from recommender.reporting.runner import START_ORDER, start_order

    assert START_ORDER.index("02") < START_ORDER.index("04")  # 04 reuses 02's saved model

    names = ["01_a.ipynb", "02_b.ipynb", "03_c.ipynb", "04_d.ipynb", "05_e.ipynb",
             "06_f.ipynb", "08_new.ipynb", "09_newer.ipynb"]
    ordered = [p.name[:2] for p in start_order([Path(n) for n in names])]
    assert ordered == [*START_ORDER, "08", "09"]
    assert [p.name for p in start_order([Path("08_new.ipynb"), Path("01_a.ipynb")])] == \
        ["01_a.ipynb", "08_new.ipynb"]
