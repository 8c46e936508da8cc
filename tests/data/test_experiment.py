"""The notebooks' experiment: a big release switches the models to their large_data settings."""

from __future__ import annotations

from recommender.data import experiment
from recommender.data.synthetic import make_synthetic, write_release


def test_a_release_is_big_from_its_number_of_ratings_unless_told(tmp_path, monkeypatch):
    data = make_synthetic(n_users=40, n_movies=60, n_ratings=800, seed=3)
    write_release(data, tmp_path / "ml-1m", "dat")
    small = experiment.load_experiment("ml-1m", str(tmp_path))
    assert not small.large and "settings" not in small.summary()
    monkeypatch.setattr(experiment, "LARGE_RELEASE_RATINGS", len(data.ratings))
    big = experiment.load_experiment("ml-1m", str(tmp_path))
    assert big.large and big.summary()["settings"].startswith("large_data")
    assert len(big.train) + len(big.test) == len(data.ratings)
    assert not experiment.load_experiment("ml-1m", str(tmp_path), large=False).large
    assert experiment.load_experiment("synthetic", large=True).large
    assert not experiment.load_experiment("synthetic").large


def test_a_big_release_analyses_a_seeded_sample_of_whole_users():
    big = experiment.load_experiment("synthetic", large=True)
    part = big.analysis_sample(train_ratings=len(big.train) // 4)
    users = set(part.train["userId"])
    assert len(big.train) // 4 <= len(part.train) < len(big.train) // 2
    # whole users: every rating of a sampled user is kept, in train, test and the release
    for mine, whole in ((part.train, big.train), (part.test, big.test),
                        (part.data.ratings, big.data.ratings)):
        assert set(mine["userId"]) <= users
        assert len(mine) == whole["userId"].isin(users).sum()
    assert part.summary()["analysis_sample"].startswith(f"{len(users):,} of ")
    again = big.analysis_sample(train_ratings=len(big.train) // 4)
    assert again.train.equals(part.train)  # drawn with the experiment's seed
    assert big.analysis_sample(train_ratings=len(big.train)) is big
    small = experiment.load_experiment("synthetic")
    assert small.analysis_sample(train_ratings=10) is small  # never on a small release


def test_a_bad_analysis_sample_size_is_one_clear_error():
    import pytest

    from recommender.core.errors import UsageError

    big = experiment.load_experiment("synthetic", large=True)
    for bad in (0, -5, 2.5, "many", True):
        with pytest.raises(UsageError, match="analysis_ratings must be a whole number"):
            big.analysis_sample(bad)
