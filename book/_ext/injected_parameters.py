"""Collapse the cell papermill injects into every executed notebook.

`python -m adv2 run` executes each chapter with papermill, which adds a code cell tagged
`injected-parameters` holding the values of this run. It repeats the chapter's parameters cell, so
the rendered page folds it away behind a button that says what it is (myst-nb's own hide-input
mechanism, applied by tag instead of by editing the executed notebooks)."""

from __future__ import annotations

TAG_CLASS = "tag_injected-parameters"  # myst-nb gives each code cell a class per tag
PROMPT_SHOW = "Show the parameter values this run was executed with (set by python -m adv2 run)"
PROMPT_HIDE = "Hide the values of this run's parameters"


def collapse_injected_cells(app, doctree) -> None:
    from docutils import nodes

    for node in doctree.findall(nodes.container):
        if node.get("nb_element") == "cell_code" and TAG_CLASS in node.get("classes", []):
            node["hide_mode"] = "input"
            node["prompt_show"] = PROMPT_SHOW
            node["prompt_hide"] = PROMPT_HIDE


def setup(app):
    app.connect("doctree-read", collapse_injected_cells)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
