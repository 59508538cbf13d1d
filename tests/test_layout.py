"""The shape of the house: the public face, no import cycles, one home per idea."""

from __future__ import annotations

import ast
from pathlib import Path

import mtlrec
from mtlrec.heads import HEADS
from mtlrec.models import ARCHITECTURES

SRC = Path(mtlrec.__file__).parent

#: the public API besides the model classes, which come from the architecture registry
PUBLIC = {
    "Batch",
    "BundleError",
    "CheckpointError",
    "ColumnBatch",
    "ConfigError",
    "DataError",
    "DenseFeature",
    "DistributedError",
    "EarlyStopping",
    "ExpertUtilisationWarning",
    "MtlrecError",
    "MtlrecWarning",
    "MultiTaskModel",
    "NotFittedError",
    "SequenceFeature",
    "Preprocessor",
    "SparseFeature",
    "Task",
    "TrainingDivergedError",
    "UndefinedMetricError",
    "UndefinedMetricWarning",
    "__version__",
    "available_cpus",
    "create_model",
    "list_balancers",
    "list_heads",
    "list_models",
    "load",
    "restore_allocator",
    "retain_freed_memory",
}


def test_public_api_is_sorted_and_complete():
    facades = {cls.facade_name for _, cls in ARCHITECTURES.items()}
    assert facades == {
        "SingleTask",
        "SharedBottom",
        "OMoE",
        "MMoE",
        "CrossStitch",
        "DSelectK",
        "AITM",
        "DBMTL",
        "POSO",
        "PEPNet",
        "SNRTrans",
        "SNRAver",
        "CGC",
        "PLE",
        "AdaTT",
        "ESMM",
    }
    assert mtlrec.__all__ == sorted(PUBLIC | facades)
    for name in mtlrec.__all__:
        assert getattr(mtlrec, name) is not None
    for name in facades:  # each class builds its architecture
        assert issubclass(getattr(mtlrec, name), mtlrec.MultiTaskModel)
        assert getattr(mtlrec, name).__module__ == "mtlrec"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """mtlrec modules a module imports (at top level or in functions), leaving out
    imports under ``if TYPE_CHECKING:``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for stmt in block.body
        for node in ast.walk(stmt)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from . import runtime` imports a module
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in MODULES else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in MODULES and m != name}


FILES = sorted(SRC.rglob("*.py"))
MODULES = {module_name(p): p for p in FILES}


def test_no_import_cycles():
    graph = {name: imports(path) for name, path in MODULES.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
    assert cycles == []


def is_cli(name: str) -> bool:
    """``mtlrec.cli`` or one of its modules: the command line sits on top, like the
    experiments."""
    return name == "mtlrec.cli" or name.startswith("mtlrec.cli.")


def test_the_core_never_imports_the_experiments():
    app = {"mtlrec", "mtlrec.__main__"}
    for name, path in MODULES.items():
        if name in app or is_cli(name) or name.startswith("mtlrec.experiments"):
            continue
        assert not {m for m in imports(path) if m.startswith("mtlrec.experiments")}, name


CORE = [
    n
    for n in MODULES
    if not n.startswith(("mtlrec.models", "mtlrec.experiments", "mtlrec.datasets"))
    and not is_cli(n)
    and n != "mtlrec"
]


def test_no_architecture_specific_code_outside_the_architecture_files():
    names = set(ARCHITECTURES.names())
    classes = {cls.__name__ for _, cls in ARCHITECTURES.items()}
    for module in CORE:
        tree = ast.parse(MODULES[module].read_text())
        strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
        identifiers = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        identifiers |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert not names & strings, (module, names & strings)
        assert not classes & identifiers, (module, classes & identifiers)


def test_no_head_specific_code_outside_the_head_files():
    heads = set(HEADS.names())
    allowed = {"mtlrec.heads.base", "mtlrec.tasks"}  # docstrings and Task's default type
    for module in CORE:
        if module.startswith("mtlrec.heads.") or module in allowed:
            continue
        tree = ast.parse(MODULES[module].read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        strings = {
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and id(n) not in docstrings
        }
        assert not heads & strings, (module, heads & strings)


def test_every_architecture_and_head_lives_in_its_own_file():
    for _, cls in [*ARCHITECTURES.items(), *HEADS.items()]:
        assert cls.__module__.rsplit(".", 1)[0] in {"mtlrec.models", "mtlrec.heads"}
    head_files = {cls.__module__ for _, cls in HEADS.items()}
    assert len(head_files) == len(HEADS.names())
