"""One call that gives every notebook the same data and the same split.

``load_experiment`` resolves the notebooks' standard parameters (dataset, data folder, split
folder, quick mode, seed) into a :class:`Experiment`, so all notebooks of a run train and
evaluate on identical train/test tables.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from recommender.core.errors import UsageError
from recommender.core.config import data_dir as resolve_data_dir
from recommender.data.releases import MovieLens, load_movielens

__all__ = ["Experiment", "load_experiment", "QUICK_SYNTHETIC", "benchmark_split_dir",
           "LARGE_RELEASE_RATINGS", "ANALYSIS_TRAIN_RATINGS"]

# Small enough for a notebook to run in seconds, big enough for the models to learn something.
QUICK_SYNTHETIC = {"n_users": 300, "n_movies": 400, "n_ratings": 15_000}
# A release with at least this many ratings is big (ml-1m and up; ml-100k and ml-latest-small
# are not): the notebooks then run the models' ``large_data`` settings.
LARGE_RELEASE_RATINGS = 500_000
# On a big release the analysis sections (variants of a model fitted side by side, the
# cold-start protocols, the origin system's preset) run on a seeded sample of users holding
# about this many train ratings, ml-1m's size; the shipped models are fitted and compared on all
# of it. Each such section then costs what it costs on ml-1m, whatever the release.
ANALYSIS_TRAIN_RATINGS = 1_000_000


@dataclass
class Experiment:
    """The data and split a notebook works on."""

    dataset: str
    data: MovieLens
    train: pd.DataFrame
    test: pd.DataFrame
    split: str
    seed: int
    large: bool = False  # a big release: models run with their ``large_data`` settings
    sample: str = ""  # set on an analysis sample: which users it holds

    @property
    def movies(self) -> pd.DataFrame:
        return self.data.movies

    def summary(self) -> dict:
        return {"dataset": self.dataset, "split": self.split, "seed": self.seed,
                "train_ratings": len(self.train), "test_ratings": len(self.test),
                **({"settings": "large_data (a big release)"} if self.large else {}),
                **({"analysis_sample": self.sample} if self.sample else {})}

    def analysis_sample(self, train_ratings: int | None = None) -> Experiment:
        """The experiment on the users of a sample drawn with its seed, taken in random order
        until they hold ``train_ratings`` train ratings (None: :data:`ANALYSIS_TRAIN_RATINGS`;
        all their train, test and release ratings kept), or this experiment itself when it is
        not a big release or its train is no larger. What a big release's analysis sections
        run on."""
        train_ratings = ANALYSIS_TRAIN_RATINGS if train_ratings is None else train_ratings
        if isinstance(train_ratings, bool) or not isinstance(train_ratings, int) \
                or train_ratings < 1:
            raise UsageError(f"analysis_ratings must be a whole number of ratings >= 1 "
                             f"(got {train_ratings!r})")
        if not self.large or len(self.train) <= train_ratings:
            return self
        counts = self.train["userId"].value_counts()
        users = np.random.default_rng(self.seed).permutation(counts.index.to_numpy())
        held = np.cumsum(counts.reindex(users).to_numpy())
        users = users[:int(np.searchsorted(held, train_ratings)) + 1]
        data = replace(self.data, ratings=self.data.ratings[
            self.data.ratings["userId"].isin(users)].reset_index(drop=True))
        part = {name: table[table["userId"].isin(users)].reset_index(drop=True)
                for name, table in (("train", self.train), ("test", self.test))}
        sample = (f"{len(users):,} of {len(counts):,} users drawn with seed {self.seed} "
                  f"({len(part['train']):,} train ratings)")
        return replace(self, data=data, sample=sample, **part)


def benchmark_split_dir(dataset: str, data_root: Path) -> Path | None:
    """The fixed benchmark split shipped beside the data (``../benchmarks/<dataset>-u20``)."""
    candidate = data_root.parent / "benchmarks" / f"{dataset}-u20"
    return candidate if (candidate / "train.csv").is_file() else None


def load_experiment(dataset: str = "ml-latest-small", data_dir: str = "", split_dir: str = "",
                    quick: bool = False, seed: int = 0, large: bool | None = None
                    ) -> Experiment:
    """Load the data and the train/test split the notebooks share.

    ``quick`` (or ``dataset="synthetic"``) uses small generated data with a planted structure.
    Otherwise the release is read from the data folder, and the split is ``split_dir`` if
    given, else the fixed benchmark split beside the data when one exists, else a per-user
    20% holdout drawn with ``seed``. ``large`` marks a big release (None: one with at least
    :data:`LARGE_RELEASE_RATINGS` ratings).
    """
    from recommender.data import splits

    if quick or dataset == "synthetic":
        from recommender.data.synthetic import make_synthetic

        data = make_synthetic(**QUICK_SYNTHETIC, seed=seed)
        train, test = splits.per_user_split(data.ratings, 0.2, seed=seed)
        return Experiment("synthetic", data, train, test, "per-user 20% (seeded)", seed,
                          bool(large))
    root = resolve_data_dir(data_dir or None)
    data = load_movielens(dataset, root)
    if large is None:
        large = len(data.ratings) >= LARGE_RELEASE_RATINGS
    fixed = Path(split_dir) if split_dir else benchmark_split_dir(dataset, root)
    if fixed is not None:
        train, test = splits.from_files(fixed / "train.csv", fixed / "test.csv")
        return Experiment(dataset, data, train, test, f"files: {fixed.name}", seed, large)
    train, test = splits.per_user_split(data.ratings, 0.2, seed=seed)
    return Experiment(dataset, data, train, test, "per-user 20% (seeded)", seed, large)
