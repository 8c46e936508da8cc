"""The guide ``docs/adding-a-model.md`` runs as written, and says what its code does.

Every ```python block of the page runs in order in one namespace, a module of its own (so
the page's ``MODELS[...] = f"{__name__}:Class"`` registers classes that ``load_model`` can
import); ```py and ```text blocks are shown only. The registry is put back afterwards. The
tests below check what the page claims: the examples beat popularity on the planted data,
round-trip through save/load, fold in a new user, explain a recommendation, and the numbers
printed in its comments are the ones measured.
"""

from __future__ import annotations

import linecache
import re
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "docs" / "adding-a-model.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(path: Path = GUIDE) -> list[tuple[int, str]]:
    """``(first line, code)`` of every ```python block of a Markdown page."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in BLOCK.finditer(text)]


def claimed(marker: str, path: Path = GUIDE) -> list[float]:
    """The numbers in the comment of the page's code line that contains ``marker``."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if marker in line]
    assert len(lines) == 1, f"{len(lines)} lines of {path.name} contain {marker!r}"
    return [float(x) for x in re.findall(r"\d+\.\d+", lines[0].partition("#")[2])]


@pytest.fixture(scope="module")
def guide():
    """The namespace left by running the page's code (once for all tests here)."""
    from recommender.models import MODELS

    registry = dict(MODELS)
    module = types.ModuleType("adding_a_model_guide")
    sys.modules[module.__name__] = module
    try:
        for line, code in python_blocks():
            name = f"<{GUIDE.name}, line {line}>"
            # the source, for tracebacks and for TensorFlow's AutoGraph (which reads it)
            linecache.cache[name] = (len(code), None, code.splitlines(True), name)
            exec(compile(code, name, "exec"), module.__dict__)
        yield module.__dict__
    finally:
        if "folder" in module.__dict__:  # the page's temporary artifact folder
            shutil.rmtree(module.__dict__["folder"], ignore_errors=True)
        MODELS.clear()
        MODELS.update(registry)
        del sys.modules[module.__name__]


def test_the_page_has_its_examples():
    codes = [code for _, code in python_blocks()]
    assert len(codes) >= 8
    assert any("class ItemCosine(Recommender)" in code for code in codes)
    assert any("class TinyTwoTower(TowerModel)" in code for code in codes)


def test_a_bad_setting_is_one_line(guide):
    assert f"# {guide['message']}" in GUIDE.read_text(encoding="utf-8")  # as the page shows it
    assert "\n" not in guide["message"]
    names = [row["name"] for row in guide["ItemCosine"].Settings.describe()]
    assert names == ["shrink"]


def test_tuning_ran_on_a_validation_slice(guide):
    tuning = guide["tuning"]
    assert sorted(tuning) == [0.0, 10.0, 50.0]
    assert max(tuning.values()) - min(tuning.values()) < 0.01  # "within 0.01 of each other"
    assert len(guide["inner"]) + len(guide["held"]) == len(guide["train"])


def test_item_cosine_beats_popularity(guide):
    ndcg, popular = guide["result"].metrics["ndcg@10"], guide["popular"].metrics["ndcg@10"]
    assert ndcg > popular + 0.02
    assert [round(ndcg, 3), round(popular, 3)] == claimed('round(popular.metrics["ndcg@10"]')


def test_item_cosine_round_trips_and_folds_in(guide):
    cosine, users = guide["cosine"], guide["users"]
    assert np.array_equal(guide["loaded"].score(users), cosine.score(users))
    scores = guide["new_scores"]
    assert scores.shape == (1, cosine.n_items)
    assert np.isfinite(scores).all()
    rated = cosine.items.encode([1, 2, 3])
    assert scores[0, rated].max() <= scores[0].max()


def test_item_cosine_explains_by_a_rated_movie(guide):
    import scipy.sparse as sp

    cosine = guide["cosine"]
    row = sp.csr_matrix(cosine.seen[[0]], dtype=np.float32)
    columns = cosine.top_k(np.array([0]), 10)[0]
    because = cosine.explain(row, columns)
    assert len(because) == 10
    assert set(because[because >= 0]) <= set(row.indices)
    assert (because >= 0).any()


def test_tiny_two_tower_beats_popularity_and_round_trips(guide):
    tower, popular = guide["tower"], guide["popular"].metrics["ndcg@10"]
    ndcg = guide["tower_result"].metrics["ndcg@10"]
    assert ndcg > popular + 0.02
    assert ndcg == pytest.approx(claimed("round(tower_result.metrics")[0], abs=0.02)
    assert 1 <= tower.meta["best_epoch"] <= tower.meta["epochs_run"]
    assert tower.meta["refit"] is True and len(tower.history) == 2
    users = guide["users"]
    assert np.array_equal(guide["tower_loaded"].score(users), tower.score(users))


def test_on_epoch_sees_every_epoch(guide):
    assert guide["epochs_seen"] == [1, 2, 3]


def test_run_time_registration(guide):
    from recommender.models import MODELS, model_class

    assert MODELS["item-cosine"] == "adding_a_model_guide:ItemCosine"
    assert model_class("tiny-two-tower") is guide["TinyTwoTower"]
    assert type(guide["tower_loaded"]) is guide["TinyTwoTower"]


# -- the README and the pages readers start from ----------------------------------------------

README = REPO / "README.md"
TEXT_FILES = ("README.md", "docs", "notebooks", "recommender", "benchmarks", "tests", ".ci")


def _rows(table_after: str, path: Path = README) -> dict[str, list[str]]:
    """The rows of the first Markdown table after the line holding ``table_after``, by their
    first cell (backquotes dropped)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if table_after in line)
    rows = {}
    for line in lines[start:]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0].strip("`")] = cells[1:]
        elif rows:
            break
    return rows


def test_the_readme_is_short_and_its_commands_are_the_ones_that_run():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 220
    assert "make run" in text and "make test" in text
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == "make test"  # CI runs exactly the README's test command
    assert "../shared" not in text  # examples point inside the repository
    for link in re.findall(r"\]\(((?:docs|reports)/[^)#]+)", text):
        assert (REPO / link).exists() or link.startswith("reports/"), link


def test_origin_systems_are_named_and_mapped_alike_everywhere():
    from recommender.reporting.guide import ORIGINS

    readme = _rows("| origin system |")
    origins_page = _rows("| origin |", REPO / "docs" / "origins.md")
    for origin in ORIGINS:
        name = f"{origin.number} {origin.name}"
        for rows in (readme, origins_page):
            assert name in rows, name
            assert [m.strip(" `") for m in rows[name][0 if rows is readme else 1].split(",")] \
                == list(origin.models), name


def test_no_seed_numbers_for_the_origin_systems():
    """A seed is a random seed; the origin systems are called by what they are."""
    pattern = re.compile(r"\bseed[- ]?00\d\b|\bseed'?s? 00\d\b", re.IGNORECASE)
    for root in TEXT_FILES:
        paths = [REPO / root] if (REPO / root).is_file() else sorted((REPO / root).rglob("*"))
        for path in paths:
            if path.suffix in (".py", ".md", ".ipynb", ".j2", "") and path.is_file():
                found = pattern.search(path.read_text(encoding="utf-8", errors="ignore"))
                assert not found, f"{path.relative_to(REPO)}: {found.group(0)!r}"


def test_the_readme_results_are_the_measured_spread_over_seeds():
    """One set of numbers: the README's table is what benchmarks/u20.py --seeds measured."""
    import json

    from recommender.models import MODELS
    from recommender.reporting.records import SEED_SPREAD

    path = REPO / "reports" / SEED_SPREAD
    if not path.is_file():
        pytest.skip(f"no measured spread at {path.relative_to(REPO)} (benchmarks/u20.py --seeds)")
    spread = json.loads(path.read_text())["models"]
    rows = _rows("| model | RMSE | NDCG@10 |")
    package = {name for name, entry in MODELS.items() if entry.startswith("recommender.")}
    assert package <= set(rows), "every registered model has its row"
    for name, (rmse, ndcg, *_) in rows.items():
        if name not in spread:
            continue
        shown = float(ndcg.strip("*").split()[0])
        assert shown == pytest.approx(spread[name]["ndcg@10"]["mean"], abs=5e-5), name
        if "rmse" in spread[name]:
            assert float(rmse.strip("*").split()[0]) == pytest.approx(
                spread[name]["rmse"]["mean"], abs=5e-5), name
