"""Content model: planted genres, a brand-new movie and a brand-new user, text, titles."""

import numpy as np
import pandas as pd
import pytest

from recommender.core.errors import DataError
from recommender.models import make_model

# Two taste groups: movies 1-10 are "Horror", 11-20 "Musical"; users 1-10 love horror and
# dislike musicals, users 11-20 the reverse. Movies 21 (Horror) and 22 (Musical) are in the
# movies table but nobody rated them: brand-new movies.
IDS = np.arange(1, 23)
MOVIES = pd.DataFrame({
    "movieId": IDS,
    "title": [f"Night Terror {i} (1980)" if i <= 10 or i == 21 else f"Happy Song {i} (2005)"
              for i in IDS],
    "year": [1980 if i <= 10 or i == 21 else 2005 for i in IDS],
    "genres": [["Horror"] if i <= 10 or i == 21 else ["Musical"] for i in IDS]})


def _ratings() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for user in range(1, 21):
        horror_fan = user <= 10
        for movie in rng.choice(np.arange(1, 21), 8, replace=False):
            likes = (movie <= 10) == horror_fan
            rows.append((user, movie, 5.0 if likes else 1.0))
    return pd.DataFrame(rows, columns=["userId", "movieId", "rating"])


@pytest.fixture(scope="module")
def model():
    return make_model("content").fit(_ratings(), movies=MOVIES)


def test_brand_new_movie_is_scored_from_its_features(model):
    history = pd.DataFrame({"userId": [1, 1], "movieId": [1, 2], "rating": [5.0, 5.0]})
    scores = model.fold_in(history, [21, 22, 999])[0]
    assert scores[0] > scores[1]  # the new horror movie beats the new musical
    assert scores[2] == -np.inf  # not in the movies table: cannot be scored


def test_brand_new_user_gets_their_genre(model):
    history = pd.DataFrame({"userId": [500, 500, 500], "movieId": [11, 12, 3],
                            "rating": [5.0, 4.5, 1.0]})
    scores = model.fold_in(history)[0]
    top = model.items.decode(np.argsort(-scores)[:5])
    assert (top > 10).all()  # musicals, the genre this unseen user liked


def test_train_users_rank_their_genre_first(model):
    scores = model.score(model.users.encode([1, 15]))
    horror = model.items.ids <= 10
    assert scores[0, horror].mean() > scores[0, ~horror].mean()
    assert scores[1, ~horror].mean() > scores[1, horror].mean()


def test_more_like_this_returns_titles_of_the_same_kind(model):
    similar = model.more_like_this(21, k=5)  # a movie nobody rated
    assert list(similar.columns) == ["movieId", "title", "similarity"]
    assert 21 not in similar["movieId"].to_numpy()
    assert similar["title"].str.startswith("Night Terror").all()
    assert similar["similarity"].is_monotonic_decreasing
    with pytest.raises(KeyError, match="not in the movies table"):
        model.more_like_this(12345)
    by_title = model.more_like_this("night terror 21 (1980)", k=5)  # case ignored
    assert by_title.equals(similar)
    assert model.more_like_this("Song 22", k=1)["title"].str.startswith("Happy Song").all()
    with pytest.raises(KeyError, match="titles match 'Night Terror'"):
        model.more_like_this("Night Terror")


def test_text_column_is_used_when_present():
    overview = [""] * 22
    overview[0] = overview[21] = "a haunted lighthouse keeper"  # movies 1 (horror), 22 (musical)
    movies = MOVIES.assign(overview=overview)
    fitted = make_model("content", prior=0.0).fit(_ratings(), movies=movies)
    plain = make_model("content", prior=0.0, text=0.0).fit(_ratings(), movies=movies)

    def similarity(model):
        return model.more_like_this(1, k=21).set_index("movieId").loc[22, "similarity"]

    assert similarity(fitted) > similarity(plain) + 0.2


def test_needs_the_movies_table():
    with pytest.raises(DataError, match="needs the movies table"):
        make_model("content").fit(_ratings())
