"""The layout's rules, checked on the source: no import cycle inside ``proxy``, and
aiohttp's private API used only behind the fence (``proxy/aio/``, and its own tests
``tests/test_aio_*.py``)."""

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "proxy"
FENCE = PACKAGE / "aio"
#: aiohttp's public modules: its top level and what its documentation offers.
PUBLIC_MODULES = frozenset(
    {"aiohttp", "aiohttp.web", "aiohttp.hdrs", "aiohttp.test_utils", "aiohttp.pytest_plugin"}
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def proxy_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, bool]]:
    """The proxy modules ``path`` imports, and whether at module level (not in a function
    or under ``if TYPE_CHECKING``): only those run when it is imported."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top_level = set(map(id, _module_level(tree)))
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}".rstrip(".")
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]  # fmt: skip
        for target in targets:
            if target in modules:
                yield target, id(node) in top_level


def _module_level(tree: ast.Module) -> Iterator[ast.stmt]:
    """Statements that run on import: the module's, and inside plain ``if``/``try``."""
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        if isinstance(node, ast.If | ast.Try):
            for block in (node.body, node.orelse, getattr(node, "finalbody", [])):
                stack.extend(block)
            for handler in getattr(node, "handlers", []):
                stack.extend(handler.body)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (a module path back to itself), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def import_graph() -> dict[str, set[str]]:
    """What each proxy module imports at module level. A package's ``__init__`` is its
    own node; importing ``a.b`` also runs ``a``'s ``__init__``, so it counts as one."""
    modules = proxy_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, at_import in imports_of(path, modules):
            if at_import and target != name:
                graph[name].add(target)
    return graph


def test_there_is_no_import_cycle_inside_proxy() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_function_local_import_hides_a_cycle() -> None:
    """Imports inside functions (lazy ones) must not close a loop either."""
    modules = proxy_modules()
    graph = {name: {t for t, _ in imports_of(path, modules) if t != name}
             for name, path in modules.items()}  # fmt: skip
    cycle = find_cycle(graph)
    allowed = {("proxy.cli", "proxy.tools.demo")}  # the CLI names its subcommands' modules
    assert cycle is None or any(a in cycle and b in cycle for a, b in allowed), cycle


# --- aiohttp's private API, behind the fence ----------------------------------------------


def aiohttp_private_names() -> frozenset[str]:
    """Every private name aiohttp defines: functions, classes, attributes, slots."""
    names: set[str] = set()
    root = Path(aiohttp.__file__).parent
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)  # __slots__ entries
    for path in root.rglob("*.pyx"):  # Cython: attributes are declared, not assigned
        names.update(re.findall(r"\b(_[A-Za-z]\w*)\b", path.read_text(encoding="utf-8")))
    return frozenset(n for n in names if n.startswith("_") and not n.startswith("__"))


# namedtuple's public API is spelled with an underscore (aiohttp happens to use it too).
PRIVATE = aiohttp_private_names() - {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}


def aiohttp_uses(source: str) -> Iterator[str]:
    """What in ``source`` reaches past aiohttp's public API."""
    tree = ast.parse(source)
    from_aiohttp: set[str] = set()
    ours: set[str] = set()  # names bound to our own modules: their privates are ours
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("proxy", "tests")):
            ours.update(alias.asname or alias.name for alias in node.names)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aiohttp"):
            module = node.module or ""
            for alias in node.names:
                from_aiohttp.add(alias.asname or alias.name)
                if module not in PUBLIC_MODULES or alias.name.startswith("_"):
                    yield f"imports {module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("aiohttp") and alias.name not in PUBLIC_MODULES:
                    yield f"imports {alias.name}"
                if alias.name.startswith("aiohttp"):
                    from_aiohttp.add((alias.asname or alias.name).split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE:
            base = node.value
            if isinstance(base, ast.Name) and (base.id in ("self", "cls") or base.id in ours):
                continue  # our own state (a subclass of aiohttp's is checked below)
            yield f"uses {ast.unparse(node)}"
        if isinstance(node, ast.ClassDef):
            bases = {ast.unparse(b).split(".")[0] for b in node.bases}
            if bases & (from_aiohttp | {"web", "aiohttp"}):
                for item in node.body:
                    if (
                        isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                        and item.name in PRIVATE
                    ):
                        yield f"overrides {node.name}.{item.name}"


def fenced(path: Path) -> bool:
    return path.is_relative_to(FENCE) or path.name.startswith("test_aio_")


def outside_the_fence() -> list[Path]:
    paths = [
        *PACKAGE.rglob("*.py"),
        *(ROOT / "tests").rglob("*.py"),
        *(ROOT / "bench").rglob("*.py"),
    ]
    return sorted(p for p in paths if not fenced(p))


@pytest.mark.parametrize("path", outside_the_fence(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_aiohttp_name_outside_the_fence(path: Path) -> None:
    found = list(aiohttp_uses(path.read_text(encoding="utf-8")))
    assert found == [], f"move these behind proxy/aio/: {found}"


@pytest.mark.parametrize(
    ("source", "finding"),
    [
        ("from aiohttp.http_writer import _serialize_headers", "imports aiohttp.http_writer._serialize_headers"),
        ("from aiohttp.client_proto import ResponseHandler", "imports aiohttp.client_proto.ResponseHandler"),
        ("import aiohttp.web_protocol", "imports aiohttp.web_protocol"),
        ("session._retry_connection = False", "uses session._retry_connection"),
        ("request._prepare_hook(response)", "uses request._prepare_hook"),
        ("x = plain._loop", "uses plain._loop"),
        ("from aiohttp import web\nclass R(web.AppRunner):\n    async def _make_server(self): ...", "overrides R._make_server"),
    ],
)  # fmt: skip
def test_the_fence_check_catches_a_private_use(source: str, finding: str) -> None:
    assert finding in list(aiohttp_uses(source))


def test_the_fence_check_lets_public_api_through() -> None:
    source = (
        "import aiohttp\nfrom aiohttp import web, StreamReader, hdrs\n"
        "from aiohttp.test_utils import TestClient\nx = web.Response(text='x').body\n"
        "y = aiohttp.ClientTimeout(total=1)\n"
    )
    assert list(aiohttp_uses(source)) == []


def test_the_fence_is_where_the_private_names_are() -> None:
    """The check sees the fence's own private uses, so it would see them anywhere."""
    found = [use for path in FENCE.rglob("*.py") for use in aiohttp_uses(path.read_text())]
    assert any("_serialize_headers" in use for use in found)
    assert any("_make_server" in use for use in found)


def test_aiohttp_is_pinned_to_the_minor_series_the_canary_passes_on() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    pin = re.search(r'"aiohttp>=(\d+)\.(\d+)\.(\d+),<(\d+)\.(\d+)"', pyproject)
    assert pin is not None, "aiohttp must be pinned to one minor series: >=X.Y.Z,<X.(Y+1)"
    major, minor, _, upper_major, upper_minor = map(int, pin.groups())
    assert (upper_major, upper_minor) == (major, minor + 1)
    installed = tuple(map(int, aiohttp.__version__.split(".")[:2]))
    assert installed == (major, minor), f"installed aiohttp {aiohttp.__version__} is not the pin"
    assert sys.version_info >= (3, 11)
