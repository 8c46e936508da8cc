"""The analyses the notebooks show, one function per figure or table, grouped by topic.

Each takes fitted models or ratings tables and returns a table (or arrays) to plot; none
trains a model the notebook could not train itself, and none knows of notebooks.
"""
