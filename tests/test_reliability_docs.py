"""docs/reliability.md names real tests: every ``tests/<file>.py::<test>`` it cites exists."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"
CITATION = re.compile(r"\b(tests/[\w/]+\.py)::(\w+)")


def defined_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }


def test_every_cited_test_exists() -> None:
    cited = CITATION.findall(DOC.read_text(encoding="utf-8"))
    assert len(cited) > 50
    missing = [
        f"{file}::{name}"
        for file, name in sorted(set(cited))
        if not (ROOT / file).is_file() or name not in defined_names(ROOT / file)
    ]
    assert not missing, f"docs/reliability.md cites tests that do not exist: {missing}"


def test_every_behaviour_line_names_a_test_or_a_todo() -> None:
    lines = [line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("- ")]
    bare = [
        line
        for line in lines
        if not CITATION.search(line) and "TODO(lead)" not in line and "make audit" not in line
    ]
    assert not bare, bare
