"""Request and response bodies of the API (Pydantic), so the OpenAPI schema documents them.

Request bodies are strict: a number is a JSON number (``true`` is not 1 star, ``"4.5"`` is not
4.5; an id may be written ``2.0``, an integer as JSON Schema counts them), and no field beyond
those documented.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = ["MAX_ID", "Id", "Rating", "RatingIn", "RatingsIn", "NewUser", "Created", "Movie",
           "PopularMovie", "Live", "Ready", "Removed",
           "Recommendation", "Recommendations", "Similar", "Prediction", "Health",
           "UserRatings", "RatingOut", "Written", "SimilarMovie", "Error",
           "MAX_RATINGS_PER_REQUEST"]

MAX_ID = 2**31 - 1
MAX_RATINGS_PER_REQUEST = 500


def _number(value: object) -> object:
    """A JSON number only: Pydantic would take ``true`` as 1 and ``"4.5"`` as 4.5."""
    if isinstance(value, (bool, str, bytes)):
        raise ValueError("expected a number, not text or true/false")
    return value


Id = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_number)]
Rating = Annotated[float, Field(ge=0.5, le=5.0, multiple_of=0.5, allow_inf_nan=False,
                                description="0.5 to 5 stars in steps of 0.5"),
                   BeforeValidator(_number)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RatingIn(_Strict):
    movie_id: Id
    rating: Rating


class RatingsIn(_Strict):
    ratings: list[RatingIn] = Field(max_length=MAX_RATINGS_PER_REQUEST,
                                    description="a movie listed twice keeps its last rating")

    def as_dict(self) -> dict[int, float]:
        return {r.movie_id: r.rating for r in self.ratings}


class NewUser(RatingsIn):
    name: str | None = Field(default=None, max_length=64, pattern=r"^[^\x00-\x1f]*$")
    ratings: list[RatingIn] = Field(default_factory=list, max_length=MAX_RATINGS_PER_REQUEST)


class Created(BaseModel):
    user_id: int
    written: int = Field(description="ratings written (and on disk) by this request")
    secret: str = Field(description="the user's secret, shown this once: send it as "
                                    "'Authorization: Bearer <secret>' to change the user's "
                                    "ratings (the server keeps only its hash)")


class Movie(BaseModel):
    movie_id: int
    title: str
    year: int | None
    genres: list[str]


class PopularMovie(Movie):
    ratings: int = Field(description="number of ratings in the dataset")
    mean_rating: float


class Recommendation(Movie):
    score: float = Field(description="the list model's score (higher ranks first)")
    predicted_rating: float = Field(description="the rating model's prediction, 0.5-5")
    reason: str
    because_movie_id: int | None = Field(description="the rated movie behind the reason")


class Recommendations(BaseModel):
    user: int
    top_n: int
    model: str
    recommendations: list[str] = Field(description="titles, best first (the shape of the "
                                       "multitask two-tower origin system's answer)")
    items: list[Recommendation]


class SimilarMovie(Movie):
    score: float


class Similar(BaseModel):
    movie: Movie
    model: str
    similar: list[SimilarMovie]


class Prediction(BaseModel):
    user: int
    movie: str = Field(description="the title matched")
    movie_id: int
    matched_by: str = Field(description="id, exact, folded (case and accents), search (the "
                                        "first title the search finds) or fuzzy")
    predicted_rating: float
    your_rating: float | None
    model: str


class RatingOut(BaseModel):
    movie_id: int
    title: str
    rating: float
    source: str = Field(description="dataset or api")


class UserRatings(BaseModel):
    user_id: int
    count: int
    ratings: list[RatingOut]


class Written(BaseModel):
    user_id: int
    written: int = Field(description="ratings written (and on disk) by this request")


class Removed(BaseModel):
    user_id: int
    movie_id: int | None = Field(description="the movie whose rating was removed")
    user_deleted: bool


class Health(BaseModel):
    status: str
    model_loaded: bool
    dataset: str
    total_movies: int
    total_users: int
    total_ratings: int
    models: dict[str, dict]
    store: dict[str, str | int]
    genres: list[str]
    dataset_user_ids: list[int] | None
    private_reads: bool = Field(description="reading a user's ratings and lists needs their "
                                            "secret (or the operator token)")
    versions: dict[str, str | int]


class Live(BaseModel):
    status: str = Field(description="'ok': the process answers")


class Ready(BaseModel):
    status: str = Field(description="'ok': models loaded and the store answers")
    store: str


class Error(BaseModel):
    detail: str | list = Field(description="what was wrong, for people")
