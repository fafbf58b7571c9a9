"""The layering: scripts over models/ over musicgen/, imports one way only, and Keras' public API only."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = {path.stem for path in ROOT.glob("*.py")}  # preprocess, train, generate, evaluate
# Each layer may import the layers after it in this list, never those before it.
LAYERS = [("scripts", SCRIPTS), ("models", {"models"}), ("musicgen", {"musicgen"})]


def imported_modules(path):
    """Every module `path` imports, at the top or inside functions."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def layer_files(name):
    return sorted((ROOT / name).glob("*.py")) if name != "scripts" else sorted(ROOT.glob("*.py"))


@pytest.mark.parametrize("position", range(1, len(LAYERS)))
def test_no_lower_layer_imports_a_higher_one(position):
    name, _ = LAYERS[position]
    higher = set().union(*(packages for _, packages in LAYERS[:position]))
    wrong = [f"{path.relative_to(ROOT)} imports {module}" for path in layer_files(name)
             for module in imported_modules(path) if module.split(".")[0] in higher]
    assert not wrong, "imports must run scripts -> models -> musicgen: " + "; ".join(wrong)


def test_the_layering_test_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from models import registry\n    import train\n")
    assert set(imported_modules(module)) == {"models", "train"}


PRIVATE_KERAS = re.compile(r"keras\.src\b|\.(_loss_tracker|_compile_metrics|_compute_loss|_symbolic_build|"
                           r"_compile_loss|_tracker|_metrics_result)\b")


def test_keras_private_api_is_used_in_one_isolated_place_only():
    uses = [f"{path.relative_to(ROOT)}:{number}" for name in ("musicgen", "models", "scripts")
            for path in layer_files(name)
            for number, line in enumerate(path.read_text().splitlines(), 1) if PRIVATE_KERAS.search(line)]
    assert uses == ["musicgen/distributed.py:" + str(_line_of("model._symbolic_build", ROOT / "musicgen/distributed.py"))]


def _line_of(text, path):
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)
