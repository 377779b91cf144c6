"""Where the book's source lives, on the front page: the substitution {{ source_link }}.

The one setting is `repository: url:` in `_config.yml` (Jupyter Book 1 hands it to Sphinx as the
theme option `repository_url`; a teacher who publishes a copy of the book changes it there). This
extension reads it from Sphinx's configuration and nowhere else; when it is empty (or left at
Jupyter Book's own default, which points at Jupyter Book's repository) the page says so and names the
setting instead of linking somewhere wrong (issue 26 item 7).
"""

from __future__ import annotations

SETTING = "`repository: url:` in `_config.yml`"
JUPYTER_BOOK_DEFAULT = "https://github.com/executablebooks/jupyter-book"  # its default_config.yml


def repository_url(config) -> str:
    """The book's repository URL as Jupyter Book passed it to Sphinx ("" when it is not set)."""
    url = str((getattr(config, "html_theme_options", None) or {}).get("repository_url") or "").strip()
    return "" if url.rstrip("/") == JUPYTER_BOOK_DEFAULT else url


def link_text(url: str) -> str:
    if url:
        return f"[{url}]({url}) (a copy of the book published elsewhere names its own with {SETTING})"
    return (
        "the repository this copy of the book was built from; its address is not set in this copy "
        f"(set {SETTING} to name it here)"
    )


def add_substitution(app, config) -> None:
    config.myst_substitutions = {
        "source_link": link_text(repository_url(config)),
        **(config.myst_substitutions or {}),
    }


def setup(app):
    app.connect("config-inited", add_substitution, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
