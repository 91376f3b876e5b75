"""The house rules that keep the code readable as it grows, checked on its source: every tag name and
artifact path is spelt in the record module only, and no function of the package is longer than a
screen."""

import ast
from pathlib import Path

import pytest

from imdb_exp.tracking import record

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [
    path for folder in ("imdb_exp", "hydra_plugins", "scripts", "tests") for path in (ROOT / folder).rglob("*.py")
]
RECORD_MODULE = ROOT / "imdb_exp" / "tracking" / "record.py"
HERE = Path(__file__).resolve()  # its own examples spell names out on purpose
MAX_FUNCTION_LINES = 50


def record_names() -> set[str]:
    """Every tag name, prefix and artifact path the record module defines."""
    names = set()
    for value in vars(record).values():
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, str):
                names.add(item)
    return names


NAMES = record_names()
# Names that are also plain words ("model", "data", ...): a literal of one is a record name only where
# it reads or writes a tag or an artifact.
WORDS = {name for name in NAMES if name.isalpha()}
RECORD_CALLS = {
    "set_tag", "delete_tag", "log_text", "log_figure", "log_artifact", "log_artifacts", "download_artifacts",
    "list_artifacts", "get",
}  # fmt: skip


def _names_a_record(node: ast.Constant, parent: ast.AST) -> bool:
    value = node.value
    if value in NAMES - WORDS:
        return True
    if any(f"tags.{name}" in value for name in NAMES - WORDS):  # a search filter
        return True
    if value not in WORDS:
        return False
    if isinstance(parent, ast.Subscript) and isinstance(parent.value, ast.Attribute):
        return parent.value.attr in ("tags", "params")
    if isinstance(parent, ast.Call) and isinstance(parent.func, ast.Attribute) and parent.func.attr in RECORD_CALLS:
        return parent.func.attr != "get" or getattr(parent.func.value, "attr", "") in ("tags", "params")
    if isinstance(parent, ast.Compare) and isinstance(parent.comparators[0], ast.Attribute):
        return parent.comparators[0].attr in ("tags", "params")
    return False


def record_literals(path: Path) -> list[tuple[int, str]]:
    """(line, literal) of each record name that ``path`` spells out."""
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _names_a_record(node, parents[node])
    ]


def test_no_tag_name_or_artifact_path_is_spelt_outside_the_record_module():
    found = [
        f"{path.relative_to(ROOT)}:{line}: {literal!r}"
        for path in SOURCES
        if path not in (RECORD_MODULE, HERE)
        for line, literal in record_literals(path)
    ]
    assert not found, "use imdb_exp.tracking.record's names:\n" + "\n".join(found)


def test_the_literal_check_finds_what_it_is_for(tmp_path):
    written = tmp_path / "writer.py"
    written.write_text(
        'client.set_tag(run_id, "failure_reason", why)\n'
        'run.data.tags["model"]\n'
        'run.data.tags.get("sweep")\n'
        "client.search_runs([e], f\"tags.config_hash = '{h}'\")\n"
        'name = "model"  # a plain word, not a tag\n'
    )
    assert record_literals(written) == [
        (1, record.FAILURE_REASON),
        (2, "model"),
        (3, "sweep"),
        (4, "tags.config_hash = '"),
    ]


@pytest.mark.parametrize("path", sorted((ROOT / "imdb_exp").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_of_the_package_is_longer_than_a_screen(path):
    tree = ast.parse(path.read_text())
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"
