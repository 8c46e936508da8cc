"""Tables as readers see them: integers as integers, p-values in scientific notation, "–"."""

import re

import numpy as np
import pandas as pd

from recommender.reporting.tables import number, readable


def _cells(styler) -> list[str]:
    return re.findall(r"<td[^>]*>(.*?)</td>", styler.to_html())


def test_a_column_of_whole_numbers_shows_integers_and_missing_values_a_dash():
    frame = pd.DataFrame({"users": [659.0, np.nan], "rmse": [0.86164, np.nan],
                          "ndcg@10_p": [2.1e-7, np.nan], "fit": [1.0, 2.5]})
    assert _cells(readable(frame)) == ["659", "0.8616", "2.1e-07", "1.0000",
                                       "–", "–", "–", "2.5000"]


def test_a_series_lists_different_quantities_each_in_its_own_form():
    series = pd.Series({"ratings": 100004.0, "sparsity": 0.98356, "diff": 9.5e-7,
                        "dataset": "ml-latest-small", "refit": True}, name="value")
    assert _cells(readable(series)) == ["100,004", "0.9836", "9.5e-07", "ml-latest-small",
                                        "True"]


def test_ids_and_years_keep_their_digits_together():
    frame = pd.DataFrame({"movieId": [122904], "year": [1995.0], "votes": [12000]})
    assert _cells(readable(frame.set_index("movieId"))) == ["1995", "12,000"]
    assert "122904" in readable(frame.set_index("movieId")).to_html()


def test_numbers_in_sentences_and_cells():
    assert number(np.int64(9066)) == "9,066" and number(np.float32(80001.0)) == "80,001"
    assert number(1995, grouped=False) == "1995"
    assert number(0.0000123) == "1.2e-05" and number(0.5) == "0.5000"
    assert number(1.6e-68, p_value=True) == "1.6e-68" and number(None) == "–"
    assert number(float("nan")) == "–" and number(239302.3) == "239,302"
