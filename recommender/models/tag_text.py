"""The tag-text origin system (MovieRecSys): users and movies as texts of tags, encoded into
one space, compared by cosine similarity.

- A movie's text is the words of every tag users gave it, plus one token for its mean train
  rating rounded to half a star (``<rating 3.5>``; ``<rating none>`` for a movie nobody
  rated in train) and, with ``genres``, one token per genre.
- A user's text is the words of the tags they gave the movies of their history, plus the
  ``top_tags`` most frequent tag words of the movies they liked (rating >= ``like``), cut to
  ``max_tokens`` distinct tokens by frequency.
- The encoder ``e(t) = W mean_w(emb(w)) + b`` (word embeddings mean-pooled over a text's
  tokens, weighted by their counts, then the origin system's linear projection) is trained
  here; Keras's ``TextVectorization`` builds the vocabulary. Scores are ``cos(e(user),
  e(movie))``.
- The loss is the origin system's cosine embedding loss: ``1 - cos`` for a pair rated >=
  ``like``, ``max(0, cos - margin)`` below it, on a class-balanced sample of pairs. Each
  user's history is split at random: ``profile`` of it builds the user's text, the rest
  gives the training pairs, so a pair's own tags never sit in its user's text. Scoring reads
  the whole history.

Early stopping watches the loss on ``validation`` of the pairs (no refit by default). The origin
system used a pretrained BERT; ``docs/models/tag-text.md`` says why none is offered here, and
holds the settings and measurements.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import keras
import numpy as np
import pandas as pd
import scipy.sparse as sp
import tensorflow as tf
from pydantic import Field

from recommender.core.errors import DataError
from recommender.data.preprocessing import IdEncoder, Interactions
from recommender.models.base import Context
from recommender.models.neural import flat_history, variable
from recommender.models.settings import TowerSettings
from recommender.models.tower import TowerModel
from recommender.models.training import History

__all__ = ["TagText", "TagTextSettings", "cosine_embedding_loss", "movie_words"]

_RATING_TOKENS = [f"<rating {r / 2:.1f}>" for r in range(1, 11)] + ["<rating none>"]
_USER_BATCH = 8192  # users whose texts are made at once when every user is ranked


class TagTextSettings(TowerSettings):
    """Settings of :class:`TagText`."""

    like: float = Field(2.5, description="lowest rating of a pair pulled together (liked or "
                        "neutral), and of a liked movie in a user's text")
    top_tags: int = Field(50, ge=0, description="tag words of the liked movies in a user's text")
    max_tokens: int = Field(128, ge=1, description="distinct tokens kept per text")
    genres: bool = Field(False, description="add a token per genre to movie texts (needs the "
                         "movies table)")
    vocabulary: int = Field(20_000, ge=1, description="most tag words in the vocabulary")
    dim: int = Field(64, ge=1, description="dimension of the word embeddings and the text space")
    margin: float = Field(0.0, description="cosine below which a disliked pair costs nothing")
    per_class: int = Field(20_000, ge=1, description="most training pairs of each class")
    profile: float = Field(0.5, gt=0, lt=1, description="share of each history that builds the "
                           "user's text in training (the rest gives the pairs)")
    batch_size: int = Field(512, ge=1, description="pairs per step")
    learning_rate: float = Field(3e-3, gt=0, description="Adam's step size")
    l2: float = Field(0.0, ge=0, description="L2 weight on the word embeddings and projection")
    validation: float = Field(0.1, ge=0, lt=1, description="share of the training pairs held "
                              "out to early-stop on")
    refit: bool = Field(False, description="retrain on all the pairs for the best epoch count "
                        "(off: the run early-stopped on the held-out pairs is the model)")


def cosine_embedding_loss(similarity, label, margin: float = 0.0) -> tf.Tensor:
    """The cosine embedding loss (as in PyTorch's ``CosineEmbeddingLoss``), per pair.

    ``1 - cos`` where ``label`` is 1 (pull together), ``max(0, cos - margin)`` where it is -1
    (push apart until the cosine is at most ``margin``).

    Args:
        similarity: cosine similarities (numpy or TensorFlow).
        label: 1 or -1 per pair.
        margin: the cosine below which a disliked pair costs nothing.

    Returns:
        Per-pair losses, a TensorFlow tensor.
    """
    similarity = tf.convert_to_tensor(similarity, tf.float32)
    label = tf.convert_to_tensor(label, tf.float32)
    return tf.where(label > 0, 1.0 - similarity, tf.maximum(similarity - margin, 0.0))


def movie_words(movies: pd.DataFrame) -> pd.DataFrame:
    """A tags table made of what every release has, for releases without one: each movie
    tagged by nobody (``userId`` -1) with its genres and the words of its title (the year
    left out)."""
    blank = pd.Series("", index=movies.index)
    titles = movies.get("title", blank).fillna("").astype(str).str.replace(
        r"\(\d{4}.*\)\s*$", "", regex=True)
    genres = movies.get("genres", blank).map(lambda g: " ".join(g) if isinstance(g, list)
                                             else "")
    return pd.DataFrame({"userId": np.int32(-1), "movieId": movies["movieId"].to_numpy(),
                         "tag": (genres + " " + titles).str.strip().to_numpy()})


def _top_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of each row (ties: lower column first)."""
    coo = matrix.tocoo()
    order = np.lexsort((coo.col, -coo.data, coo.row))
    row = coo.row[order]
    start = np.searchsorted(row, np.arange(matrix.shape[0]))
    keep = np.arange(len(row)) - start[row] < k
    return sp.csr_matrix((coo.data[order][keep], (row[keep], coo.col[order][keep])),
                         shape=matrix.shape)


class _Pairs(NamedTuple):
    """Training pairs with the texts they index."""

    users: sp.csr_matrix  # token counts of each train user's text (from the profile half)
    movies: sp.csr_matrix  # token counts of each train movie's text
    pairs: pd.DataFrame  # user, item (indices into the two), label (1 or -1)


class TagText(TowerModel):
    """Tag texts of users and movies, a text encoder, cosine embedding loss (MovieRecSys).

    Reads the tags table (the movies table only with ``genres``); a release without tags
    (ml-100k, ml-1m) gives the movies' genre and title words instead (:func:`movie_words`).
    Movies known from the tags or movies table at fit time are scored from their text even
    with no rating in train (their rating token is ``<rating none>``). A user's own tags (from the tags table given at fit
    time) count on the movies of their history, matched by ``userId``: pass ``user_ids`` to
    :meth:`score_history` (:meth:`fold_in` does).
    """

    name = "tag-text"
    Settings = TagTextSettings
    folds_in = True

    # -- texts -----------------------------------------------------------------------------

    def _prepare(self, data: Interactions, context: Context) -> None:
        tags = context.tags
        if tags is None or tags.empty:  # releases without tags (ml-100k, ml-1m)
            if context.movies is None:
                raise DataError(f"{self.name}: needs the tags table or the movies table: "
                                "fit(train, tags=..., movies=...), or --movies on the "
                                "command line")
            tags = movie_words(context.movies)
            self.meta["text"] = "genre and title words (no tags table)"
        if self.settings.genres and context.movies is None:
            raise DataError(f"{self.name}: genres=True needs the movies table "
                            "(or genres=false)")
        known = [data.items.ids, tags["movieId"].to_numpy()]
        if context.movies is not None:
            known.append(context.movies["movieId"].to_numpy())
        self.catalogue = IdEncoder.fit(np.concatenate(known))
        self._tokenise(tags, context.movies, data)
        self.ratings = data.matrix("rating")
        self.meta["vocabulary"] = len(self.vocabulary)

    def _tokenise(self, tags: pd.DataFrame, movies: pd.DataFrame | None,
                  data: Interactions) -> None:
        """Vocabulary, each movie's token counts, and every tag application's tokens."""
        s = self.settings
        vectorizer = keras.layers.TextVectorization(
            max_tokens=s.vocabulary, standardize="lower_and_strip_punctuation",
            split="whitespace")
        words = tags["tag"].astype(str).to_numpy()
        vectorizer.adapt(words)
        genre_tokens = []
        if s.genres:
            genre_tokens = sorted({f"<genre {g}>" for g in movies["genres"].explode().dropna()})
        self.vocabulary = np.array(vectorizer.get_vocabulary()[2:] + _RATING_TOKENS
                                   + genre_tokens)
        ids = np.asarray(vectorizer(words)) - 2  # '' and '[UNK]' dropped: ids from 0
        row, pos = np.nonzero(ids >= 0)
        movie = self.catalogue.encode(tags["movieId"].to_numpy())[row]
        self.applications = (tags["userId"].to_numpy()[row], movie, ids[row, pos])
        n, v = len(self.catalogue), len(self.vocabulary)
        counts = sp.csr_matrix((np.ones(len(row), np.float32), (movie, ids[row, pos])),
                               shape=(n, v))
        if s.genres:
            lookup = {t: k for k, t in enumerate(self.vocabulary)}
            table = movies[movies["movieId"].isin(self.catalogue.ids)].explode("genres")
            table = table.dropna(subset=["genres"])
            counts = counts + sp.csr_matrix(
                (np.ones(len(table), np.float32),
                 (self.catalogue.encode(table["movieId"].to_numpy()),
                  [lookup[f"<genre {g}>"] for g in table["genres"]])), shape=(n, v))
        self.movie_tags = counts.tocsr()  # tag words (and genres): the liked-tags source
        mean = np.asarray(data.matrix("rating").sum(0)).ravel() / np.maximum(
            data.item_counts(), 1)
        rated = data.item_counts() > 0
        rating_token = np.full(n, v - len(genre_tokens) - 1)  # <rating none>
        rows = self.catalogue.encode(data.items.ids)
        rating_token[rows[rated]] = (v - len(genre_tokens) - len(_RATING_TOKENS)
                                     + np.clip(np.round(mean[rated] * 2), 1, 10).astype(int) - 1)
        text = self.movie_tags + sp.csr_matrix((np.ones(n, np.float32),
                                                (np.arange(n), rating_token)), shape=(n, v))
        self.movie_text = _top_per_row(text.tocsr(), s.max_tokens)

    def user_text(self, history: sp.csr_matrix, user_ids: np.ndarray) -> sp.csr_matrix:
        """Token counts of each user's text from their history (users x train movies ratings)
        and the tags they gave those movies: own tag words, plus the ``top_tags`` most
        frequent tag words of the movies they liked, cut to ``max_tokens`` tokens."""
        s = self.settings
        rows = self.catalogue.encode(self.items.ids)
        to_catalogue = sp.csr_matrix((np.ones(len(rows), np.float32),
                                      (np.arange(len(rows)), rows)),
                                     shape=(len(rows), len(self.catalogue)))
        watched = history.copy()
        watched.data[:] = 1.0
        liked = (history >= s.like).astype(np.float32)
        top = _top_per_row((liked @ to_catalogue @ self.movie_tags).tocsr(), s.top_tags)
        user, movie, token = self.applications
        user_ids = np.asarray(user_ids)
        order = np.argsort(user_ids, kind="stable")  # the rows need not come sorted by id
        found = IdEncoder(user_ids[order]).encode(user, unknown="missing")
        u = np.where(found >= 0, order[np.maximum(found, 0)], -1)
        mine = np.flatnonzero(u >= 0)
        # own tags count only on movies of the given history (the answer stays out)
        on_history = (watched @ to_catalogue).tocoo()
        n = len(self.catalogue)
        mine = mine[np.isin(u[mine] * n + movie[mine], on_history.row * n + on_history.col)]
        own = sp.csr_matrix((np.ones(len(mine), np.float32), (u[mine], token[mine])),
                            shape=(len(user_ids), len(self.vocabulary)))
        return _top_per_row((own + top).tocsr(), s.max_tokens)

    # -- training --------------------------------------------------------------------------

    def _whole(self, data: Interactions) -> _Pairs:
        """Each user's ratings split at random into the profile (builds the user's text) and
        the pairs to train on; the pairs are a class-balanced sample, shuffled."""
        s = self.settings
        ratings = self.ratings
        rng = np.random.default_rng(self.seed)
        coo = ratings.tocoo()
        in_profile = rng.random(coo.nnz) < s.profile
        profile = sp.csr_matrix((coo.data[in_profile], (coo.row[in_profile],
                                                         coo.col[in_profile])),
                                shape=ratings.shape)
        pairs = pd.DataFrame({"user": coo.row[~in_profile], "item": coo.col[~in_profile],
                              "label": np.where(coo.data[~in_profile] >= s.like, 1.0, -1.0)})
        n = min(s.per_class, *pairs["label"].value_counts().reindex([1.0, -1.0], fill_value=0))
        if n == 0:
            raise DataError(f"{self.name}: train needs ratings both >= and < {s.like}")
        pairs = pd.concat([g.sample(n, random_state=self.seed)
                           for _, g in pairs.groupby("label")])
        return _Pairs(self.user_text(profile, self.users.ids),
                      self.movie_text[self.catalogue.encode(self.items.ids)],
                      pairs.sample(frac=1.0, random_state=self.seed))

    def _holdout(self, whole: _Pairs) -> tuple[_Pairs, _Pairs | None]:
        """The first ``validation`` of the (shuffled) pairs to validate on, the rest to train."""
        n_val = int(round(self.settings.validation * len(whole.pairs)))
        if not n_val:
            return whole, None
        return (whole._replace(pairs=whole.pairs.iloc[n_val:]),
                whole._replace(pairs=whole.pairs.iloc[:n_val]))

    def _train(self, part: _Pairs, held: _Pairs | None, epochs: int,
               on_epoch: Callable[[int], None] | None = None) -> tuple[_Encoder, History]:
        s = self.settings
        encoder = self._fresh()

        def batch_fn(batch: dict, rng) -> dict:
            return {**{f"user_{k}": v for k, v in flat_history(part.users[batch["user"]]).items()},
                    **{f"movie_{k}": v
                       for k, v in flat_history(part.movies[batch["item"]]).items()},
                    "label": batch["label"]}

        def loss_fn(batch):
            n = tf.shape(batch["label"])[0]
            u = encoder(*(batch[f"user_{k}"] for k in ("item", "segment", "weight")), n)
            m = encoder(*(batch[f"movie_{k}"] for k in ("item", "segment", "weight")), n)
            cos = tf.reduce_sum(u * m, axis=1)
            return cosine_embedding_loss(cos, batch["label"], s.margin), s.l2 * encoder.penalty()

        def validate() -> float:
            pairs = held.pairs
            cos = np.sum(self._vectors(held.users[pairs["user"]])
                         * self._vectors(held.movies[pairs["item"]]), axis=1)
            return float(np.mean(cosine_embedding_loss(cos, pairs["label"], s.margin)))

        pairs = part.pairs
        examples = {"user": pairs["user"].to_numpy(np.int64),
                    "item": pairs["item"].to_numpy(np.int64),
                    "label": pairs["label"].to_numpy(np.float32)}
        result = self._loop(encoder, loss_fn, examples, epochs,
                            validate=validate if held is not None else None, batch_fn=batch_fn,
                            on_epoch=on_epoch,
                            jit_compile=False)  # padded texts vary in shape: XLA recompiles
        return encoder, result

    def _finish(self, whole: _Pairs) -> None:
        self.meta["pairs"] = len(whole.pairs)

    def _build(self) -> _Encoder:
        return _Encoder(len(self.vocabulary), self.settings.dim, np.random.default_rng(self.seed))

    # -- answering -------------------------------------------------------------------------

    def _vectors(self, text: sp.csr_matrix) -> np.ndarray:
        """Unit vectors of token-count rows: weighted mean of word embeddings, projected."""
        table, kernel, bias = self.module.weights()
        total = np.maximum(np.asarray(text.sum(axis=1)), 1e-12)
        x = np.asarray(text @ table) / total @ kernel + bias
        empty = np.diff(text.tocsr().indptr) == 0
        x[empty] = 0.0  # nothing to say: no direction
        return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def _scores(self, history: sp.csr_matrix, user_ids: np.ndarray,
                rows: np.ndarray) -> np.ndarray:
        """Cosine of the texts of users (history rows) and of the catalogue movies ``rows``."""
        users = self._vectors(self.user_text(history, user_ids))
        return users @ self._vectors(self.movie_text[rows]).T

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        return self._scores(self.ratings[user_index], self.users.ids[user_index],
                            self.catalogue.encode(self.items.ids))

    def _score_factors(self, user_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit text vectors of the users (made ``_USER_BATCH`` users at a time: a user's
        text reads the tag words of every movie they liked) and of the train movies: a
        score is their cosine, one product."""
        users = np.empty((len(user_index), self.settings.dim), np.float32)
        for lo in range(0, len(user_index), _USER_BATCH):
            batch = user_index[lo: lo + _USER_BATCH]
            users[lo: lo + len(batch)] = self._vectors(
                self.user_text(self.ratings[batch], self.users.ids[batch]))
        movies = self._vectors(self.movie_text[self.catalogue.encode(self.items.ids)])
        return users, np.ascontiguousarray(movies.T)

    def _score_history(self, ratings, movie_ids, user_ids):
        """Scores over any movie with a text (train or not); other movies score ``-inf``."""
        rows = self.catalogue.encode(movie_ids, unknown="missing")
        scores = self._scores(ratings, user_ids, np.maximum(rows, 0))
        scores[:, rows < 0] = -np.inf
        return scores

    # -- persistence -----------------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        user, movie, token = self.applications
        arrays = {"catalogue": self.catalogue.ids, "vocabulary": self.vocabulary,
                  "tag_user": user, "tag_movie": movie, "tag_token": token}
        for name in ("ratings", "movie_tags", "movie_text"):
            matrix = getattr(self, name)
            arrays.update({f"{name}_data": matrix.data, f"{name}_indices": matrix.indices,
                           f"{name}_indptr": matrix.indptr})
        return arrays

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.catalogue = IdEncoder(arrays["catalogue"])
        self.vocabulary = arrays["vocabulary"]
        self.applications = (arrays["tag_user"], arrays["tag_movie"], arrays["tag_token"])
        shapes = {"ratings": (len(self.users), len(self.items)),
                  "movie_tags": (len(self.catalogue), len(self.vocabulary)),
                  "movie_text": (len(self.catalogue), len(self.vocabulary))}
        for name, shape in shapes.items():
            setattr(self, name, sp.csr_matrix(
                (arrays[f"{name}_data"], arrays[f"{name}_indices"], arrays[f"{name}_indptr"]),
                shape=shape))


class _Encoder(tf.Module):
    """Word embeddings mean-pooled over a text's tokens, then a linear projection."""

    def __init__(self, n_tokens: int, dim: int, rng: np.random.Generator):
        super().__init__(name="tag_text")
        self.table = variable(rng, (n_tokens, dim), 0.1, "table")
        self.kernel = variable(rng, (dim, dim), np.sqrt(1.0 / dim), "kernel")
        self.bias = tf.Variable(tf.zeros([dim]), name="bias")

    def __call__(self, item, segment, weight, n):
        total = tf.math.unsorted_segment_sum(weight, segment, n)[:, None]
        pooled = tf.math.unsorted_segment_sum(weight[:, None] * tf.gather(self.table, item),
                                              segment, n) / tf.maximum(total, 1e-12)
        x = (pooled @ self.kernel + self.bias) * tf.cast(total > 0, tf.float32)
        return tf.math.l2_normalize(x, axis=1)

    def penalty(self) -> tf.Tensor:
        return tf.reduce_sum(tf.square(self.table)) + tf.reduce_sum(tf.square(self.kernel))

    def weights(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.table.numpy(), self.kernel.numpy(), self.bias.numpy()
