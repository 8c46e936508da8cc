"""What readers see: experiment records, figures, analyses, the notebook runner, the HTML index.

Sits above evaluation: it may call any layer below it; nothing below imports it.
"""
