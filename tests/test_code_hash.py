"""A stage's code hash follows its module's imports: what it imports (even indirectly, even
inside a function) reruns it when edited; what it does not import leaves it alone."""

from pathlib import Path

import pytest

from curation.code_hash import code_hash, import_closure
from curation.errors import StageError


def write_package(root: Path) -> dict[str, Path]:
    """A tiny project package `toy`: the stage imports `helpers` inside a function, helpers
    import `deep` relatively, `__init__` re-exports `Shape` lazily from `shapes`."""
    files = {
        "__init__.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from toy.shapes import Shape\n"
        ),
        "stage.py": (
            "from toy import Shape\n"
            "def run():\n    from toy import helpers\n    return helpers.VALUE\n"
        ),
        "helpers.py": "from . import deep\nVALUE = deep.VALUE\n",
        "deep.py": "VALUE = 1\n",
        "shapes.py": "class Shape: ...\n",
        "server.py": "from toy import stage\nPORT = 1\n",
        "typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import toy.server\n",
    }
    package = root / "toy"
    package.mkdir()
    for name, text in files.items():
        (package / name).write_text(text)
    return {"toy": package}


def test_the_closure_follows_function_level_relative_and_lazy_imports(tmp_path):
    roots = write_package(tmp_path)
    assert sorted(import_closure("toy.stage", roots)) == [
        "toy", "toy.deep", "toy.helpers", "toy.shapes", "toy.stage",
    ]  # fmt: skip


def test_editing_a_module_the_stage_imports_indirectly_changes_its_hash(tmp_path):
    roots = write_package(tmp_path)
    before = code_hash("toy.stage", roots)
    (roots["toy"] / "deep.py").write_text("VALUE = 2\n")
    assert code_hash("toy.stage", roots) != before


def test_editing_a_module_the_stage_does_not_import_leaves_its_hash(tmp_path):
    roots = write_package(tmp_path)
    before = code_hash("toy.stage", roots)
    (roots["toy"] / "server.py").write_text("from toy import stage\nPORT = 2\n")
    assert code_hash("toy.stage", roots) == before


def test_imports_only_for_type_checkers_are_not_followed(tmp_path):
    roots = write_package(tmp_path)
    assert sorted(import_closure("toy.typed", roots)) == ["toy", "toy.typed"]


def test_the_annotate_stage_hashes_code_regions_but_not_the_test_server():
    closure = import_closure("annotators.stage")
    assert "curation.code_regions" in closure
    assert "support.llm_server" not in closure


def test_the_pii_stage_does_not_hash_the_local_test_server_or_other_packages():
    closure = import_closure("curation.pii.stage")
    assert "curation.code_regions" in closure
    assert {name.split(".")[0] for name in closure} == {"curation"}


def test_a_stage_module_that_cannot_be_found_is_a_stage_error():
    with pytest.raises(StageError, match=r"stage code module 'curation\.nowhere' not found"):
        code_hash("curation.nowhere")
