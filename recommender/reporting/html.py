"""The HTML a reader opens: executed notebooks as pages, and the index that links them.

Pages read the same offline: formulas are converted to MathML (rendered by the browser
itself, no MathJax from a CDN). A notebook cell is left out of its page by a tag, so the
notebooks stay runnable as they are: ``parameters`` and papermill's ``injected-parameters``
(the run's setup is shown by the first output instead), ``remove-cell`` (plumbing: saving
models, recording metrics) and ``remove-input`` (only the output shows, e.g. the closing
"What this shows").
"""

from __future__ import annotations

import html
import math
import re
from importlib import metadata
from pathlib import Path

import pandas as pd

from recommender.core.files import atomic_write_text
from recommender.reporting.guide import GLOSSARY, NOTEBOOKS, ORIGINS, notebook_of
from recommender.reporting.records import save_figure
from recommender.reporting.tables import MISSING, number

__all__ = ["export_html", "latex_to_mathml", "write_index", "package_versions",
           "HIDDEN_CELL_TAGS", "HIDDEN_INPUT_TAGS", "notebook_title"]

MAIN_PACKAGES = ("tensorflow", "keras", "numpy", "pandas", "scipy", "scikit-learn",
                 "matplotlib", "papermill")
HIDDEN_CELL_TAGS = ("parameters", "injected-parameters", "remove-cell")
HIDDEN_INPUT_TAGS = ("remove-input",)
SITE = "Movie recommender lab"


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


def notebook_title(nb) -> str:
    """The notebook's first Markdown heading (``# 02 · The regression model``), or ''."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, re.MULTILINE)
            if match:
                return match.group(1).strip()
    return ""


def export_html(notebook: Path, target: Path) -> None:
    """Write an executed notebook as an HTML page for readers: titled after its first
    heading, linked back to the index, without the cells its tags hide, and needing no
    network (MathML formulas, none of the CDN scripts of nbconvert's lab template)."""
    import nbformat
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = latex_to_mathml(cell.source)
    title = notebook_title(nb) or Path(notebook).stem
    nb.metadata["title"] = f"{title} · {SITE}"
    config = Config()
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_cell_tags = set(HIDDEN_CELL_TAGS)
    config.TagRemovePreprocessor.remove_input_tags = set(HIDDEN_INPUT_TAGS)
    exporter = HTMLExporter(config=config, template_name="offline",
                            extra_template_basedirs=[str(Path(__file__).parent / "templates")],
                            exclude_input_prompt=True, exclude_output_prompt=True)
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


_STYLE = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}img{max-width:100%}table{border-collapse:collapse;margin:1em 0;
font-size:.9em}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}td.text,th.text{
text-align:left}.meta td{text-align:left}small{color:#666;white-space:nowrap}p,li{max-width:62em}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em;font-size:.9em}dt{
font-weight:600}dd{margin:0}a{color:#1a5fb4}"""

# Index columns: (metrics key, header); interval columns show [low, high] under the value.
_INDEX_COLUMNS = (("ndcg@10", "NDCG@10"), ("rmse", "RMSE"), ("precision@10", "P@10"),
                  ("recall@10", "R@10"), ("hr@10", "HR@10"), ("coverage@10", "cov@10"),
                  ("top1pct_share", "top-1% share"), ("ndcg@10_p", "NDCG p"),
                  ("rmse_p", "RMSE p"), ("fit_seconds", "fit s"))


def _number(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _cell(row: dict, key: str) -> str:
    value = _number(row.get(key))
    if value is None:
        return MISSING
    if key.endswith("_p"):
        return number(value, p_value=True)
    if key.endswith("seconds"):
        return f"{value:.1f}"
    low, high = _number(row.get(f"{key}_low")), _number(row.get(f"{key}_high"))
    interval = f"<br><small>[{low:.3f}, {high:.3f}]</small>" if low is not None else ""
    return f"{value:.4f}{interval}"


def _model_link(name: str) -> str:
    page = notebook_of(name)
    return f"<a href='{page}.html'>{html.escape(name)}</a>"


def _comparison_table(rows: list[dict]) -> str:
    keys = [(k, h) for k, h in _INDEX_COLUMNS if any(_number(r.get(k)) is not None for r in rows)]
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in [("model", "model"), *keys])
    body = "".join("<tr><td>" + _model_link(str(r["model"])) + "</td>"
                   + "".join(f"<td>{_cell(r, k)}</td>" for k, _ in keys) + "</tr>"
                   for r in rows)
    return f"<table class='comparison'><tr>{head}</tr>{body}</table>"


def _glossary() -> str:
    items = "".join(f"<dt>{html.escape(term)}</dt><dd>{html.escape(text)}</dd>"
                    for term, text in GLOSSARY.items())
    return f"<dl>{items}</dl>"


_SEED_COLUMNS = (("ndcg@10", "NDCG@10"), ("rmse", "RMSE"), ("recall@10", "R@10"),
                 ("coverage@10", "cov@10"), ("fit_seconds", "fit s"))


def _seed_cell(values: dict, metric: str) -> str:
    if metric not in values:
        return MISSING
    mean, sd = values[metric]["mean"], values[metric]["sd"]
    if metric == "fit_seconds":
        return f"{mean:.1f}"
    return f"{mean:.4f}" + (f" ± {sd:.4f}" if round(sd, 4) > 0 else "")


def _seed_table(spread: dict) -> str:
    """Mean ± sd over seeds per model, for the metrics the spread holds."""
    models = spread.get("models") or {}
    columns = [(m, h) for m, h in _SEED_COLUMNS if any(m in v for v in models.values())]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["model", *(h for _, h in columns)])
    rows = "".join(f"<tr><td>{_model_link(name)}</td>"
                   + "".join(f"<td>{_seed_cell(values, m)}</td>" for m, _ in columns) + "</tr>"
                   for name, values in models.items())
    seeds = ", ".join(map(str, spread.get("seeds", [])))
    return (f"<p>Each model fitted once with each of seeds {seeds} on the same split "
            f"(<code>benchmarks/u20.py --seeds</code>, {html.escape(str(spread.get('date', '')))})"
            ": mean ± sample standard deviation over the seeds, no ± where every seed gives the "
            "same figure; fit s is the mean.</p>"
            f"<table><tr>{head}</tr>{rows}</table>")


def _origin_result(origin, rows: dict[str, dict]) -> str:
    """This run's headline for an origin system's models: best NDCG@10 and best RMSE."""
    mine = [rows[m] for m in origin.models if m in rows]
    parts = []
    ranked = [r for r in mine if _number(r.get("ndcg@10")) is not None]
    if ranked:
        top = max(ranked, key=lambda r: r["ndcg@10"])
        parts.append(f"NDCG@10 {top['ndcg@10']:.4f} ({html.escape(top['model'])})")
    rated = [r for r in mine if _number(r.get("rmse")) is not None]
    if rated:
        top = min(rated, key=lambda r: r["rmse"])
        parts.append(f"RMSE {top['rmse']:.4f} ({html.escape(top['model'])})")
    return "; ".join(parts) or MISSING


def _origins_table(comparison: list[dict] | None) -> str:
    rows = {r["model"]: r for r in comparison or []}
    titles = {n.stem: n.title for n in NOTEBOOKS}
    body = ""
    for origin in ORIGINS:
        models = ", ".join(_model_link(m) for m in origin.models)
        pages = ", ".join(f"<a href='{s}.html'>{html.escape(s[:2])} {html.escape(titles[s])}</a>"
                          for s in origin.notebooks)
        body += (f"<tr><td class='text'>{html.escape(origin.number)} "
                 f"{html.escape(origin.name)}</td><td class='text'>{html.escape(origin.built)}"
                 f"</td><td class='text'>{models}</td><td class='text'>{pages}</td>"
                 f"<td class='text'>{html.escape(origin.reported)}</td>"
                 f"<td class='text'>{_origin_result(origin, rows)}</td></tr>")
    head = "".join(f"<th class='text'>{h}</th>" for h in
                   ("origin system", "what it built", "our models", "notebook",
                    "what it reported", "this run"))
    return (f"<table><tr>{head}</tr>{body}</table><p>What each write-up built is summarised "
            "in <a href='../docs/origins.md'>docs/origins.md</a>.</p>")


def _notebook_table(notebooks: list[dict]) -> str:
    guides = {n.stem: n for n in NOTEBOOKS}
    body = ""
    for entry in notebooks:
        stem = Path(entry["name"]).stem
        guide = guides.get(stem)
        title = f"{stem[:2]} · {guide.title}" if guide else stem
        text = html.escape(guide.description) if guide else ""
        models = ", ".join(html.escape(m) for m in guide.models) if guide else ""
        body += (f"<tr><td class='text'><a href='{html.escape(entry['html'])}'>"
                 f"{html.escape(title)}</a></td><td class='text'>{text}</td>"
                 f"<td class='text'>{models}</td><td>{entry['seconds']:.1f}</td></tr>")
    return ("<table><tr><th>notebook</th><th class='text'>what it shows</th>"
            f"<th class='text'>models it explains</th><th>seconds</th></tr>{body}</table>")


def _intro(run_info: dict) -> str:
    quick = " (quick mode: small synthetic data, few epochs)" if run_info.get("quick") else ""
    return (
        "<p>An open toolkit for movie-recommendation analysis on MovieLens: one Python package "
        "that every notebook calls, TensorFlow models trained through one shared loop, and "
        "baselines measured on a fixed split with the same protocol. This page is the entry to "
        "one run of every notebook: which model does what best, then each notebook as a "
        "page.</p>"
        f"<p><b>This run:</b> dataset {html.escape(str(run_info.get('dataset')))}{quick}, "
        f"split {html.escape(str(run_info.get('split')))}, seed "
        f"{html.escape(str(run_info.get('seed')))}; run on "
        f"{html.escape(str(run_info.get('date', MISSING)))} at commit "
        f"{html.escape(str(run_info.get('commit', MISSING)))}, "
        f"{html.escape(str(run_info.get('total seconds')))} s in all.</p>")


def write_index(reports_dir: str | Path, notebooks: list[dict], run_info: dict,
                comparison: list[dict] | None = None, summary_markdown: str = "",
                seed_spread: dict | None = None) -> Path:
    """Write ``reports/index.html``: what the project and this run are, the comparison as a
    picture (NDCG@10 and RMSE with their intervals) and its verdict, the origin systems, every
    model's row with a glossary, the spread over seeds, the notebooks, and the run's details.

    Args:
        reports_dir: the reports folder.
        notebooks: one dict per notebook with ``name``, ``html`` (relative link), ``seconds``.
        run_info: dataset, split, seed, date, commit, total seconds... shown as a table.
        comparison: the rows of the model comparison (notebook 07's ``table``), if any.
        summary_markdown: the comparison's verdict (notebook 07's "What this shows").
        seed_spread: mean and sd over seeds of the headline models, if measured.
    """
    from nbconvert.filters.markdown import markdown2html

    reports_dir = Path(reports_dir)
    parts = [f"<!doctype html><html lang='en'><meta charset='utf-8'>"
             f"<title>Reports · {SITE}</title><style>{_STYLE}</style>"
             f"<h1>{SITE}: reports</h1>", _intro(run_info)]
    if comparison:
        from recommender.reporting.plots import comparison_overview

        import matplotlib.pyplot as plt

        figure = comparison_overview(pd.DataFrame(comparison))
        picture = save_figure(figure, "index_comparison", reports_dir)
        plt.close(figure)
        parts.append("<h2>Which model for which job</h2>"
                     f"<img src='figures/{picture.name}' alt='NDCG@10 and RMSE of every model "
                     "with 95% intervals'>"
                     "<p>Dots are each model's value on the test set, lines its 95% bootstrap "
                     "interval over users.</p>" + markdown2html(summary_markdown))
    parts.append("<h2>Where the models come from</h2><p>The project grew from five write-ups, "
                 "the <i>origin systems</i>; each is rebuilt here and measured on the same "
                 "split as everything else.</p>" + _origins_table(comparison))
    if comparison:
        parts.append("<h2>Every model</h2><p>A model's name links to the notebook that "
                     "explains it.</p>" + _comparison_table(comparison)
                     + "<h3>What the columns mean</h3>" + _glossary())
    if seed_spread:
        parts.append("<h2>Across seeds</h2>" + _seed_table(seed_spread))
    parts.append("<h2>Notebooks</h2>" + _notebook_table(notebooks))
    info = {**run_info, **{f"version: {k}": v for k, v in package_versions().items()}}
    meta = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in info.items())
    parts.append(f"<h2>Run</h2><table class='meta'>{meta}</table></html>")
    path = reports_dir / "index.html"
    atomic_write_text(path, "\n".join(parts))
    return path
