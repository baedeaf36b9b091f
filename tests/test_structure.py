"""The project's module structure: no import cycles anywhere, the agent's test support off its device path."""

from __future__ import annotations

import ast

from tests.harness import ROOT

PACKAGES = ("coordinator", "node_agent", "phonghop")
DEVICE_PATH = ("node_agent.sources", "node_agent.devices", "node_agent.media", "node_agent.encoding")
TEST_SUPPORT = ("node_agent.testsource", "phonghop.testpattern")


def _imports() -> dict[str, set[str]]:
    """Module -> project modules it imports (anywhere in the file, lazy imports and type-only ones too)."""
    modules = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts  # Alembic's scripts, loaded by Alembic alone
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                candidates = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            found.update(c for c in candidates if c in modules and c != name)
        graph[name] = found
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for module in graph[todo.pop()]:
            if module not in seen:
                seen.add(module)
                todo.append(module)
    return seen


def test_no_module_imports_itself_through_others() -> None:
    graph = _imports()
    cycles = sorted(module for module in graph if module in _reachable(graph, module))
    assert cycles == [], f"modules in an import cycle: {cycles}"


def test_the_device_path_does_not_use_the_test_source() -> None:
    graph = _imports()
    for module in DEVICE_PATH:
        assert not _reachable(graph, module) & set(TEST_SUPPORT), module


def test_the_local_api_does_not_need_the_whole_agent() -> None:
    assert "node_agent.agent" not in _reachable(_imports(), "node_agent.local_api")
