"""The HTML a reader opens: executed notebooks as pages, and the index that links them.

Pages read the same offline: formulas are converted to MathML (rendered by the browser
itself, no MathJax from a CDN).
"""

from __future__ import annotations

import html
import math
import re
from importlib import metadata
from pathlib import Path

import pandas as pd

from recommender.core.files import atomic_write_text
from recommender.reporting.records import save_figure

__all__ = ["export_html", "latex_to_mathml", "write_index", "package_versions"]

MAIN_PACKAGES = ("tensorflow", "keras", "numpy", "pandas", "scipy", "scikit-learn",
                 "matplotlib", "papermill")


# Code spans are kept as they are; $$display$$ and $inline$ formulas become MathML.
_MATH = re.compile(r"(`+)(?:(?!\1).)+?\1|\$\$(.+?)\$\$|(?<![\\$])\$(?!\s)(.+?)(?<![\s\\])\$",
                   re.DOTALL)


def latex_to_mathml(markdown: str) -> str:
    """Markdown with its ``$...$`` and ``$$...$$`` formulas replaced by MathML."""
    from latex2mathml.converter import convert

    def replace(match: re.Match) -> str:
        if match.group(1):
            return match.group(0)
        display, inline = match.group(2), match.group(3)
        latex = display if display is not None else inline
        mathml = convert(" ".join(latex.split()), display="block" if display else "inline")
        return f"\n\n{mathml}\n\n" if display is not None else mathml

    return _MATH.sub(replace, markdown)


def export_html(notebook: Path, target: Path) -> None:
    """Write an executed notebook as an HTML page that needs no network (MathML formulas,
    none of the CDN scripts of nbconvert's lab template)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = latex_to_mathml(cell.source)
    exporter = HTMLExporter(extra_template_basedirs=[str(Path(__file__).parent / "templates")],
                            template_name="offline")
    body, _ = exporter.from_notebook_node(nb)
    atomic_write_text(target, body)


def package_versions() -> dict[str, str]:
    out = {}
    for name in MAIN_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}img{max-width:100%}table{border-collapse:collapse;margin:1em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.meta td{text-align:left}
small{color:#666;white-space:nowrap}p{max-width:60em;line-height:1.45}"""

# Index columns: (metrics key, header); interval columns show [low, high] under the value.
_INDEX_COLUMNS = (("ndcg@10", "NDCG@10"), ("rmse", "RMSE"), ("precision@10", "P@10"),
                  ("recall@10", "R@10"), ("hr@10", "HR@10"), ("coverage@10", "cov@10"),
                  ("top1pct_share", "top-1% share"), ("ndcg@10_p", "NDCG p"),
                  ("rmse_p", "RMSE p"), ("fit_seconds", "fit s"))


def _number(value) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _cell(row: dict, key: str) -> str:
    value = _number(row.get(key))
    if value is None:
        return "–"
    if key.endswith("_p"):
        return f"{value:.1e}"
    if key.endswith("seconds"):
        return f"{value:.1f}"
    low, high = _number(row.get(f"{key}_low")), _number(row.get(f"{key}_high"))
    interval = f"<br><small>[{low:.3f}, {high:.3f}]</small>" if low is not None else ""
    return f"{value:.4f}{interval}"


def _comparison_table(rows: list[dict]) -> str:
    keys = [(k, h) for k, h in _INDEX_COLUMNS if any(_number(r.get(k)) is not None for r in rows)]
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in [("model", "model"), *keys])
    body = "".join("<tr><td>" + html.escape(str(r["model"])) + "</td>"
                   + "".join(f"<td>{_cell(r, k)}</td>" for k, _ in keys) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _best(rows: list[dict], key: str, largest: bool) -> dict | None:
    rated = [r for r in rows if _number(r.get(key)) is not None]
    return (max if largest else min)(rated, key=lambda r: r[key]) if rated else None


def _summary(rows: list[dict], baselines: dict) -> str:
    """A few sentences on what the comparison says, written from its numbers."""
    by_name = {r["model"]: r for r in rows}
    sentences = []
    for key, label, largest, base_key, p_key in (("ndcg@10", "NDCG@10", True, "top_n", "ndcg@10_p"),
                                                 ("rmse", "RMSE", False, "rating", "rmse_p")):
        best, base = _best(rows, key, largest), by_name.get(baselines.get(base_key) or "")
        if best is None:
            continue
        text = (f"Best {label}: <b>{html.escape(best['model'])}</b>, {best[key]:.4f} "
                f"(95% interval {best[key + '_low']:.3f} to {best[key + '_high']:.3f})")
        if base is not None and base is not best:
            p = _number(best.get(p_key))
            verdict = ("" if p is None else
                       f"; a paired test against it gives p = {p:.1e}"
                       + (", a real difference" if p < 0.01 else ", no clear difference"))
            text += (f", against {base[key]:.4f} for {html.escape(base['model'])}, the best "
                     f"baseline{verdict}")
        elif base is best:
            text += ", a baseline: no other model beats it"
        sentences.append(text + ".")
    sentences.append("Bars show each model's value with its 95% bootstrap interval over users; "
                     "where two intervals overlap, the p-values (paired tests against the best "
                     "baseline) tell whether the gap is real.")
    return "<p>" + " ".join(sentences) + "</p>"


def write_index(reports_dir: str | Path, notebooks: list[dict], run_info: dict,
                comparison: list[dict] | None = None, baselines: dict | None = None) -> Path:
    """Write ``reports/index.html``: the comparison as a picture (NDCG@10 and RMSE with their
    intervals), a few sentences on it and its table, then the notebooks and the run.

    Args:
        reports_dir: the reports folder.
        notebooks: one dict per notebook with ``name``, ``html`` (relative link), ``seconds``.
        run_info: dataset, split, seed, total seconds... shown as a key/value table.
        comparison: the rows of the model comparison (notebook 07's ``table``), if any.
        baselines: the best baselines of the comparison (``top_n``, ``rating``).
    """
    reports_dir = Path(reports_dir)
    parts = [f"<!doctype html><meta charset='utf-8'><title>Recommender reports</title>"
             f"<style>{_STYLE}</style><h1>Movie recommender lab: reports</h1>"]
    if comparison:
        from recommender.reporting.plots import comparison_overview

        import matplotlib.pyplot as plt

        figure = comparison_overview(pd.DataFrame(comparison))
        picture = save_figure(figure, "index_comparison", reports_dir)
        plt.close(figure)
        parts.append("<h2>Model comparison</h2>"
                     f"<img src='figures/{picture.name}' alt='NDCG@10 and RMSE of every model "
                     "with 95% intervals'>" + _summary(comparison, baselines or {})
                     + _comparison_table(comparison))
    rows = "".join(
        f"<tr><td><a href='{html.escape(n['html'])}'>{html.escape(n['name'])}</a></td>"
        f"<td>{n['seconds']:.1f}</td></tr>" for n in notebooks)
    parts.append("<h2>Notebooks</h2><table><tr><th>notebook</th><th>seconds</th></tr>"
                 f"{rows}</table>")
    info = {**run_info, **{f"version: {k}": v for k, v in package_versions().items()}}
    meta = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in info.items())
    parts.append(f"<h2>Run</h2><table class='meta'>{meta}</table>")
    path = reports_dir / "index.html"
    atomic_write_text(path, "\n".join(parts))
    return path
