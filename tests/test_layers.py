"""Dependencies point inward: no layer imports an upper one; only serving imports FastAPI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Each layer may import only the layers listed for it (and itself).
ALLOWED = {
    "features": set(),
    "models": {"features"},
    "decisioning": {"features", "models"},
    "training": {"features", "models", "decisioning"},
    "channels": {"features", "models", "decisioning"},
    "journeys": {"features", "models", "decisioning", "channels"},
    "serving": {"features", "models", "decisioning", "training", "channels", "journeys"},
}
WEB_FRAMEWORKS = {"fastapi", "starlette", "uvicorn"}


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_point_inward(layer: str) -> None:
    forbidden = set(ALLOWED) - ALLOWED[layer] - {layer}
    if layer != "serving":
        forbidden |= WEB_FRAMEWORKS
    offenders = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (ROOT / layer).rglob("*.py")
        for name in imported_top_levels(path) & forbidden
    }
    assert not offenders, sorted(offenders)


def test_the_walker_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from serving.app import create_app\nimport fastapi\n")
    assert imported_top_levels(module) == {"serving", "fastapi"}
