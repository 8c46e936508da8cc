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
