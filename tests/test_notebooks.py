"""Static checks of the committed chapters (fast; no execution)."""

import ast
import re

import nbformat
import pytest
from book_pages import BOOK, chapters, config, toc_files

CHAPTERS = chapters()


def test_there_are_chapters_and_all_are_in_the_toc():
    assert CHAPTERS, "no .ipynb chapters found in book/"
    listed = set(toc_files())
    for nb in CHAPTERS:
        assert str(nb.relative_to(BOOK).with_suffix("")) in listed, f"{nb} is not in book/_toc.yml"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} cell {i} has outputs: strip them before committing"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_first_code_cell_installs_the_library_on_colab_only(path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    src = first.source
    url = config()["repository"]["url"]
    assert "google.colab" in src and f"git+{url}" in src, (
        f"{path.name}: first code cell must pip-install {url} on Colab"
    )
    # Outside Colab the cell must do nothing: everything hangs off the `if`.
    tree = ast.parse(src)
    calls = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom, ast.If))]
    assert not calls, f"{path.name}: the install cell runs code outside its Colab check"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_imports_the_library(path):
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert re.search(r"^\s*(from antiforge_lib[ .]|import antiforge_lib)", code, re.M), (
        f"{path.name} does not import antiforge_lib"
    )


def test_colab_launch_settings():
    cfg = config()
    assert cfg["repository"]["url"].startswith("https://github.com/")
    assert cfg["repository"]["path_to_book"] == "book"
    assert "colab" in cfg["launch_buttons"]["colab_url"]
