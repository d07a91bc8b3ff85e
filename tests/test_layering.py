"""The package layout is the data flow, and imports follow it (read from the source).

capture (audio) -> gate (billing) -> engine -> turns -> spool/MQTT, with the providers'
pure protocol objects under the engine and the wiring (app) and the doctor on top. A lower
layer never imports a higher one, and only the wiring layer and the doctor (and the
command line) read the configuration schema."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parent.parent / "edgecap"

LAYERS: dict[str, int] = {
    "runtime": 0,
    "audio": 0,
    "state": 0,
    "config": 0,
    "providers": 1,
    "turns": 2,
    "billing": 3,
    "auth": 3,
    "engine": 4,
    "sync": 4,
    "mqtt": 4,
    "systemd": 4,
    "app": 5,
    "doctor": 6,
    "sim": 6,
    "tokenservice": 6,
    "cli": 7,
    "__main__": 8,
}
"""Each top-level part of edgecap and its layer: a module imports only its own layer's
parts or lower ones. (`doctor` sits above `app` because it builds its settings with the
daemon's own wiring functions.)"""

CONFIG_READERS = {"app", "doctor", "cli", "config", "tokenservice"}
"""`tokenservice` (edgecap-tokens) has a schema of its own built from edgecap's config
helpers."""


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imports() -> list[tuple[str, str]]:
    """(importing module, imported edgecap module) for every edgecap import."""
    found: list[tuple[str, str]] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "edgecap":  # from edgecap import __version__ / a package
                    found += [(module, f"edgecap.{a.name}") for a in node.names]
                elif node.module.startswith("edgecap."):
                    found.append((module, node.module))
            elif isinstance(node, ast.Import):
                found += [(module, a.name) for a in node.names if a.name.startswith("edgecap.")]
    return found


def test_every_part_has_a_layer() -> None:
    parts = {part_of(m) for m, _ in imports()} | {part_of(t) for _, t in imports()}
    parts.discard("__version__")
    assert parts <= set(LAYERS), f"parts without a layer: {sorted(parts - set(LAYERS))}"


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{module} imports {target}"
        for module, target in imports()
        if part_of(target) in LAYERS and LAYERS[part_of(target)] > LAYERS[part_of(module)]
    ]
    assert upward == []


def test_only_the_wiring_and_the_doctor_read_the_config_schema() -> None:
    readers = sorted(
        f"{module} imports {target}"
        for module, target in imports()
        if part_of(target) == "config" and part_of(module) not in CONFIG_READERS
    )
    assert readers == []


def test_the_engine_decides_without_io() -> None:
    """The controller and the policies import no I/O library and no adapter."""
    pure = ["engine/controller.py", "engine/policy.py", "engine/rotation.py", "engine/gaps.py"]
    io = ("asyncio", "websockets", "httpx", "paho", "sqlite3", "socket", "alsaaudio", "time")
    for name in pure:
        tree = ast.parse((PACKAGE / name).read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            bad = [n for n in names if n.split(".")[0] in io]
            assert not bad, f"{name} imports {bad}"


def test_the_daemon_never_imports_the_token_service() -> None:
    """edgecap-tokens is a server for the fleet's operator (the `server` extra): nothing on
    the device imports it, so a device install needs none of its libraries."""
    importers = sorted(
        module
        for module, target in imports()
        if part_of(target) == "tokenservice" and part_of(module) != "tokenservice"
    )
    assert importers == []
