"""Make the built book render with no network: Plotly, widgets and equations.

- Executed kernels inherit ``PLOTLY_RENDERER=notebook``: plotly then embeds
  plotly.js in the page, instead of a mime type myst-nb drops or a CDN link.
- ``book/_vendor`` (fetched from the npm registry by
  ``scripts/fetch_vendor_js.sh``) is served as static files for the widget
  manager's ``embed.js`` and MathJax. It is added here, after Jupyter Book has
  set up ``_static``, because Jupyter Book would otherwise load every ``.js``
  file in a static folder on every page.
"""

import os
from pathlib import Path

VENDOR = "_vendor"


def _add_vendor(app, config):
    vendor = Path(app.srcdir) / VENDOR
    needed = [vendor / "ipywidgets" / "embed.js", vendor / "mathjax" / "tex-mml-chtml.js"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"missing {', '.join(missing)}: run scripts/fetch_vendor_js.sh (make setup does) to fetch them"
        )
    config.html_static_path.append(VENDOR)
    config.mathjax_path = "mathjax/tex-mml-chtml.js"  # relative to _static
    # Load MathJax before the page body (not deferred): Plotly's inline figure
    # scripts probe window.MathJax, and a bare config object there makes them
    # call MathJax 2's API and throw.
    config.mathjax_options = {"defer": None}


def setup(app):
    os.environ["PLOTLY_RENDERER"] = "notebook"
    app.connect("config-inited", _add_vendor)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
