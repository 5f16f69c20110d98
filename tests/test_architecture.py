"""docs/architecture.md's layers hold: no module of compress_lib imports one of a later layer (top-level imports
and imports inside functions alike), apart from the exceptions the document names."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "compress_lib"
# in order; a module may import from its own layer and the ones before it
LAYERS = [
    ("helpers", {"errors", "files", "threads", "locking", "overrides", "presets", "config"}),
    ("model", {"model", "checkpoint", "zoo", "import_checkpoint"}),
    ("data", {"data"}),
    ("training", {"objective", "training", "pretrain"}),
    ("compression", {"compression"}),
    ("measurement", {"efficiency", "downstream"}),
    ("results", {"results", "verdicts", "findings", "deployment", "figure_style", "plotting"}),
    ("notebooks", {"notebook", "study", "trajectory_results", "prior_work", "figures", "teaching"}),
    ("entry points", {"cli", "commands", "__init__"}),
]
EXCEPTIONS = {  # (importing module, imported top-level name): why (docs/architecture.md)
    ("compression.surgery", "efficiency"): "a model's structure is counted with the efficiency closed forms",
}


def layer_of(top: str) -> int:
    top = "__init__" if top.startswith("__") else top  # from compress_lib import __version__
    for i, (_, names) in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"compress_lib.{top} is in no layer of docs/architecture.md; add it there and here")


def imported_modules(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("compress_lib"):
            parts = node.module.split(".")[1:]
            if parts:
                yield parts[0]
            else:  # from compress_lib import figure_style
                yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("compress_lib."):
                    yield alias.name.split(".")[1]


def test_every_module_is_in_a_layer_and_imports_no_later_layer():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        module = ".".join(rel.parts)
        own = layer_of(rel.parts[0])
        for top in set(imported_modules(path)):
            if layer_of(top) > own and (module, top) not in EXCEPTIONS:
                violations.append(f"compress_lib.{module} ({LAYERS[own][0]}) imports compress_lib.{top} "
                                  f"({LAYERS[layer_of(top)][0]})")
    assert not violations, "\n".join(violations)
