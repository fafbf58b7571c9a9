"""The layering: scripts over models/ over musicgen/, imports one way only, and Keras' public API only."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARY_PACKAGES = ("models", "musicgen")


def scripts(root=ROOT):
    """The command-line scripts: every module at the top of the tree (preprocess.py, train.py, ...)."""
    return sorted(root.glob("*.py"))


def layers(root=ROOT):
    """(name, the top-level names its modules are imported by, its files), highest first: each layer may import
    the layers after it, never those before it."""
    return [("scripts", {path.stem for path in scripts(root)}, scripts(root))] + [
        (package, {package}, sorted((root / package).rglob("*.py"))) for package in LIBRARY_PACKAGES]


def imported_modules(path, root=ROOT):
    """Every module `path` imports, at the top or inside functions, relative imports made absolute."""
    tree = ast.parse(path.read_text(), str(path))
    parts = list(path.relative_to(root).with_suffix("").parts)
    package = parts if parts[-1] == "__init__" else parts[:-1]
    package = package[:-1] if package and package[-1] == "__init__" else package
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - (node.level - 1)] if node.level else []
            yield ".".join(base + ([node.module] if node.module else []))


def wrong_imports(root=ROOT):
    """'file imports module' for every import of a higher layer than the file's own."""
    found = []
    ordered = layers(root)
    for position, (_, _, files) in enumerate(ordered):
        higher = set().union(*(names for _, names, _ in ordered[:position]))
        found += [f"{path.relative_to(root)} imports {module}" for path in files
                  for module in imported_modules(path, root) if module.split(".")[0] in higher]
    return found


def test_no_lower_layer_imports_a_higher_one():
    wrong = wrong_imports()
    assert not wrong, "imports must run scripts -> models -> musicgen: " + "; ".join(wrong)


def test_the_layering_test_sees_every_script_and_every_nested_module():
    names = {path.name for path in scripts()}
    assert {"preprocess.py", "train.py", "generate.py", "evaluate.py", "crossval.py", "tune.py"} <= names
    library = {path.relative_to(ROOT).as_posix() for _, _, files in layers()[1:] for path in files}
    assert {"musicgen/vocabulary.py", "models/registry.py"} <= library


def test_the_layering_test_sees_imports_inside_functions_in_nested_packages_and_relative_ones(tmp_path):
    (tmp_path / "make.py").write_text("import musicgen\n")
    nested = tmp_path / "musicgen" / "inner"
    nested.mkdir(parents=True)
    (nested / "__init__.py").write_text("from ..notes import ONSET\n")
    (nested / "deep.py").write_text("def f():\n    from models import registry\n    import make\n"
                                    "from . import sibling\nfrom .. import vocabulary\n")
    (tmp_path / "models").mkdir()
    assert set(imported_modules(nested / "deep.py", tmp_path)) == {"models", "make", "musicgen.inner",
                                                                 "musicgen"}
    assert set(imported_modules(nested / "__init__.py", tmp_path)) == {"musicgen.notes"}
    assert wrong_imports(tmp_path) == ["musicgen/inner/deep.py imports models", "musicgen/inner/deep.py imports make"]


PRIVATE_KERAS = re.compile(r"keras\.src\b|\.(_loss_tracker|_compile_metrics|_compute_loss|_symbolic_build|"
                           r"_compile_loss|_tracker|_metrics_result)\b")


def test_keras_private_api_is_used_in_one_isolated_place_only():
    uses = [f"{path.relative_to(ROOT)}:{number}" for _, _, files in layers() for path in files
            for number, line in enumerate(path.read_text().splitlines(), 1) if PRIVATE_KERAS.search(line)]
    assert uses == ["musicgen/distributed.py:" + str(_line_of("model._symbolic_build", ROOT / "musicgen/distributed.py"))]


def _line_of(text, path):
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.mark.parametrize("package", LIBRARY_PACKAGES)
def test_no_module_of_the_library_is_over_500_lines(package):
    long = [f"{path.relative_to(ROOT)} ({count} lines)" for path in sorted((ROOT / package).rglob("*.py"))
            if (count := len(path.read_text().splitlines())) > 500]
    assert not long, "split these by what they hold: " + ", ".join(long)
