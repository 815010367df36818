"""Static checks of the committed chapters (fast; no execution)."""

import ast
import re
from pathlib import Path

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


# ---------------------------------------------------------------------------------------------------------------
# Citations come from book/references.bib, and one switch sizes every chapter


def _bib_keys() -> set[str]:
    return set(re.findall(r"^@\w+\{([^,\s]+),", (BOOK / "references.bib").read_text(), re.M))


def _pages() -> list[tuple[str, str]]:
    """(name, markdown text) of every page of the book: notebook markdown cells and .md pages."""
    pages = [(f"{p}.md", (BOOK / f"{p}.md").read_text()) for p in map(Path, toc_files()) if (BOOK / f"{p}.md").exists()]
    for nb_path in CHAPTERS:
        nb = nbformat.read(nb_path, as_version=4)
        pages.append((nb_path.name, "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")))
    return pages


# What a hand-typed reference looks like: an author list with initials ("S. Cao, Q. Zou"), "et al." with a
# year ("Cao et al. (2021"), or a venue with a year ("ICCV 2019").
_TYPED_CITATION = re.compile(
    r"\b[A-Z]\. [A-Z][\w'-]+, [A-Z]\. [A-Z]"
    r"|\bet al\.,? \(?(19|20)\d\d"
    r"|\b(ICCV|CVPR|ECCV|ICLR|ICML|NeurIPS|JMLR|ACM Multimedia|arXiv)\W{0,3}(19|20)\d\d"
)


@pytest.mark.parametrize("name,text", _pages(), ids=lambda v: v if v.endswith((".ipynb", ".md")) else "-")
def test_citations_come_from_references_bib(name, text):
    typed = [m.group(0) for m in _TYPED_CITATION.finditer(text)]
    assert not typed, f"{name}: cite with {{cite:t}}`key` from book/references.bib instead of typing {typed}"
    keys = {k.strip() for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text) for k in group.split(",")}
    unknown = keys - _bib_keys()
    assert not unknown, f"{name}: {sorted(unknown)} not in book/references.bib"


def test_the_bibliography_page_lists_references_bib():
    assert config()["bibtex_bibfiles"] == ["references.bib"]
    assert "references" in toc_files() and "{bibliography}" in (BOOK / "references.md").read_text()


def test_typed_citation_pattern_catches_what_it_should():
    for typed in ("J. Cao, H. Zou, X. Mao", "Cao et al. (2021, Sec. 1)", "Rössler et al., 2019", "CVPR 2022"):
        assert _TYPED_CITATION.search(typed), typed
    for fine in ("{cite:t}`cao2021metric` (Sec. 1)", "Cao et al. argue", "Table 3, row 2", "H.264 at CRF 23"):
        assert not _TYPED_CITATION.search(fine), fine


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_one_switch_name_sizes_every_chapter(path):
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert not re.search(r"^\s*FULL\s*=", code, re.M), f"{path.name}: the size switch is `DEMO = True`, not FULL"
    if re.search(r"\bDEMO\b", code):
        assert len(re.findall(r"^DEMO = True\b", code, re.M)) == 1, f"{path.name}: set `DEMO = True` once"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_the_paper_path_of_a_chapter_is_the_paper_preset(path):
    """``DEMO = False`` must mean the paper's settings: the "paper" preset (ImageNet weights), never switched off."""
    code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    if not re.search(r"\bDEMO\b", code) or not re.search(r"TrainConfig|run_ablation", code):
        pytest.skip("no training behind the switch")
    paper = re.compile(r"""preset\((\s*"demo"\s*if\s+DEMO\s+else\s*)?"paper"|preset\s*=\s*(\S+\s+else\s+)?"paper\"""")
    assert paper.search(code), f"{path.name}: with DEMO = False, train with TrainConfig.preset('paper')"
    assert not re.search(r"pretrained\s*=\s*False", code), f"{path.name}: the paper's settings start from ImageNet"
