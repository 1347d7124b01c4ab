"""The code's shape, checked: one door to the store, flows own their states, small
modules, and imports that only point down.

These are the rules a newcomer relies on to find their way (README, "Code map");
each test names the offending file and line so a change that breaks one is
easy to put right.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from bot.conversation.flowfile import load_flows

ROOT = Path(__file__).resolve().parents[1]
BOT = ROOT / "bot"
MAX_LINES = 450

# Packages and modules by layer: a module may import its own layer's and lower ones'.
# Within "domain", privacy < conversation < policy (see `DOMAIN_ORDER`).
LAYERS = {
    "base": {
        "config", "errors", "logs", "eventloop", "metrics", "observers", "i18n", "crypto",
        "datafile", "whatsapp", "store", "audit",
    },
    "domain": {"privacy", "conversation", "policy"},
    "runtime": {"runtime", "support"},
    "edge": {
        "webhook", "operator", "keys", "simulator", "cli", "app", "services", "workers",
        "locales_cli", "__main__", "doctor", "api", "staff_cli",
    },
}  # fmt: skip
ORDER = ["base", "domain", "runtime", "edge"]
DOMAIN_ORDER = ["privacy", "conversation", "policy"]


def modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(BOT.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def unit_of(module: str) -> str:
    """bot.privacy.person -> privacy; bot.audit -> audit."""
    return module.split(".")[1]


def imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "bot":
                yield from ((node.lineno, f"bot.{a.name}") for a in node.names)
            else:
                yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names)


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def test_only_the_store_imports_sqlalchemy() -> None:
    """One door to the store: other packages run store functions through
    `db.read`/`db.write` and name a connection by `bot.store.Conn`."""
    found = [
        f"{where(path, line)} imports {name}"
        for path, tree in modules()
        if "store" not in path.relative_to(BOT).parts
        for line, name in imports(tree)
        if name.split(".")[0] in {"sqlalchemy", "sqlmodel", "alembic"}
    ]
    assert found == []


def test_no_state_is_named_outside_the_conversation_package() -> None:
    """Which state means what is the flow files' business (and the engine's)."""
    states = {s.name for s in load_flows(ROOT / "flows").all_states}
    prefixes = {name.split(".")[0] + "." for name in states}  # as in startswith("erase.")
    found = []
    for path, tree in modules():
        if "conversation" in path.relative_to(BOT).parts:
            continue
        texts = set()  # message ids handed to the renderer may share a state's name
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "text":
                texts.update(id(a) for a in node.args)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in texts
                and (node.value in states or node.value in prefixes)
            ):
                found.append(f"{where(path, node.lineno)} names {node.value!r}")
    assert found == []


def test_no_module_is_too_long_to_read_at_once() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {n} lines"
        for path, _ in modules()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert found == []


def test_imports_only_point_down() -> None:
    layer_of = {unit: layer for layer, units in LAYERS.items() for unit in units}
    found = []
    for path, tree in modules():
        rel = path.relative_to(BOT)
        me = rel.parts[0].removesuffix(".py")
        if me == "__init__":
            continue
        assert me in layer_of, f"{rel}: put '{me}' in a layer of this test"
        for line, name in imports(tree):
            if not name.startswith("bot.") or unit_of(name) == me:
                continue
            other = unit_of(name)
            assert other in layer_of, f"{where(path, line)}: put '{other}' in a layer"
            mine, theirs = ORDER.index(layer_of[me]), ORDER.index(layer_of[other])
            upward = theirs > mine
            if not upward and layer_of[me] == layer_of[other] == "domain":
                upward = DOMAIN_ORDER.index(other) > DOMAIN_ORDER.index(me)
            if upward:
                found.append(f"{where(path, line)}: {me} imports {name}")
    assert found == []


def test_every_action_and_condition_has_one_implementation() -> None:
    """The flow files may name exactly the actions and conditions Python carries out."""
    from bot.conversation.actions import ACTIONS, CONDITIONS
    from bot.runtime.effects import CONDITION_CHECKS, HANDLERS

    assert set(HANDLERS) == set(ACTIONS)
    assert set(CONDITION_CHECKS) == set(CONDITIONS)
