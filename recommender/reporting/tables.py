"""Tables as a reader should see them in a notebook or a report page.

:func:`readable` shows whole numbers as whole numbers (80,001, not 80001.000000; ids and
years without a thousands separator), other numbers to a few decimals, p-values in scientific
notation and a missing value as "–"; the data itself is not changed (it returns a pandas
``Styler``).
"""

from __future__ import annotations

import math
import numbers

import pandas as pd

__all__ = ["readable", "number", "MISSING"]

MISSING = "–"


def _is_p_value(column) -> bool:
    """Columns holding p-values: ``ndcg@10_p``, ``rmse_p``, ``p``, ``p-value``."""
    name = str(column[-1] if isinstance(column, tuple) else column).lower()
    return name in ("p", "p-value", "p_value") or name.endswith(("_p", " p"))


def number(value, digits: int = 4, p_value: bool = False, significant: bool = False,
           grouped: bool = True) -> str:
    """One value as a table shows it (see the module docstring): ``digits`` decimals, or
    ``digits`` significant digits with ``significant``; thousands separated unless not
    ``grouped`` (ids, years)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalars as Python numbers
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        return str(value)
    if p_value:
        return "<1e-300" if value == 0 else f"{value:.1e}"  # 0: below float precision
    if isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer()
                                               and abs(value) >= 1):
        return f"{int(value):,}" if grouped else str(int(value))
    if abs(value) >= 10_000:
        return f"{value:,.0f}" if grouped else f"{value:.0f}"
    if significant:
        return f"{value:.{digits}g}"
    if value != 0 and abs(value) < 10 ** -digits:
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def _is_label(column) -> bool:
    """Columns of ids or years, whose digits are not grouped in thousands."""
    name = str(column[-1] if isinstance(column, tuple) else column)
    return name.endswith(("Id", "_id")) or name in ("id", "year", "epoch")


def _column_formatter(values: pd.Series, digits: int, p_value: bool, grouped: bool = True):
    """A formatter for one column: a float column of whole numbers shows them as integers;
    in any other column each value is shown by :func:`number`, except that a float is never
    shown as an integer (1.0 among decimals reads 1.0000)."""
    if p_value:
        return lambda v: number(v, digits, p_value=True)
    if pd.api.types.is_float_dtype(values):
        finite = values.dropna()
        if len(finite) and (finite == finite.round()).all():
            return lambda v: number(v if isinstance(v, float) and math.isnan(v) else int(v),
                                    grouped=grouped)
        return lambda v: (number(v, digits, grouped=grouped)
                          if math.isnan(v) or not float(v).is_integer() else f"{v:.{digits}f}")
    return lambda v: number(v, digits, grouped=grouped)


def readable(table: pd.DataFrame | pd.Series, digits: int = 4, name: str = "value"):
    """``table`` styled for reading.

    A DataFrame's column holds one quantity and is formatted as a whole; a Series (shown as a
    one-column table named ``name``) lists different quantities, each formatted on its own.
    """
    if isinstance(table, pd.Series):
        frame = table.to_frame(table.name if table.name is not None else name)
        formats = {frame.columns[0]: lambda v: number(v, digits, significant=True)}
    else:
        frame = table
        formats = {column: _column_formatter(frame[column], digits, _is_p_value(column),
                                             grouped=not _is_label(column))
                   for column in frame.columns}
    styler = frame.style.format(formats)
    labels = not any(_is_label(name) for name in frame.index.names if name is not None)
    return styler.format_index(lambda v: number(v, digits, grouped=labels), axis=0)
