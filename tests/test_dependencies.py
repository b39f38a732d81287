"""Dependencies: every one the code imports is declared with a range whose upper bound is set, the
installed versions are inside the ranges, and the code imports no private module of a dependency."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "llamarun"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
REQUIREMENTS = [Requirement(r) for r in PROJECT["dependencies"]]
TEST_REQUIREMENTS = [Requirement(r) for r in PROJECT["optional-dependencies"]["test"]]
CLUSTER_REQUIREMENTS = [Requirement(r) for r in PROJECT["optional-dependencies"]["cluster"]]
# import name -> distribution name, for the ones that differ
DISTRIBUTIONS = {"llama_cpp": "llama-cpp-python", "huggingface_hub": "huggingface-hub",
                 "prometheus_client": "prometheus-client", "pydantic_settings": "pydantic-settings",
                 "grpc": "grpcio", "grpc_status": "grpcio-status", "grpc_health": "grpcio-health-checking",
                 "grpc_reflection": "grpcio-reflection", "google": "protobuf", "yaml": "pyyaml"}
OPTIONAL = {"pynvml"}  # nvidia-ml-py: used when present


GENERATED = SRC / "grpc" / "v1"  # grpcio-tools' output: its stubs check grpcio's version through grpc._utilities


CLUSTER_CODE = (SRC / "cluster", SRC / "cli" / "cluster_cmd.py")  # imports the `cluster` extra


def _imports(*, generated: bool = True, exclude: tuple[Path, ...] = (),
             only: tuple[Path, ...] = ()) -> dict[str, set[str]]:
    """Top-level module -> the dotted paths imported from it, over the package (or ``only`` its parts)."""
    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        if not generated and path.is_relative_to(GENERATED):
            continue
        if any(path.is_relative_to(p) for p in exclude) or (only and not any(path.is_relative_to(p) for p in only)):
            continue
        for dotted in _imported_modules(path):
            found.setdefault(dotted.partition(".")[0], set()).add(dotted)
    return found


def _imported_modules(path: Path) -> Iterator[str]:
    """The absolute modules a file imports, from its syntax tree (text in docstrings is not code)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def _third_party(names: set[str]) -> set[str]:
    return {n for n in names if n not in sys.stdlib_module_names and n not in {"llamarun", "__future__"}}


@pytest.mark.parametrize("req", REQUIREMENTS + TEST_REQUIREMENTS + CLUSTER_REQUIREMENTS, ids=str)
def test_every_range_has_an_upper_bound_and_holds_the_installed_version(req: Requirement) -> None:
    if req.marker is not None and not req.marker.evaluate():
        pytest.skip(f"{req.name} is not used on this Python")
    assert any(s.operator in ("<", "<=", "==") for s in req.specifier), f"{req} has no upper bound"
    installed = metadata.version(req.name)
    assert req.specifier.contains(installed, prereleases=True), f"{req.name} {installed} is outside {req}"


def test_every_imported_dependency_is_declared() -> None:
    declared = {r.name.lower().replace("_", "-") for r in REQUIREMENTS}
    imported = _third_party(set(_imports(exclude=CLUSTER_CODE))) - OPTIONAL
    missing = {m for m in imported if DISTRIBUTIONS.get(m, m).lower().replace("_", "-") not in declared}
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"


def test_the_cluster_code_imports_only_what_the_cluster_extra_adds() -> None:
    declared = {r.name.lower().replace("_", "-") for r in REQUIREMENTS + CLUSTER_REQUIREMENTS}
    imported = _third_party(set(_imports(only=CLUSTER_CODE))) - OPTIONAL
    missing = {m for m in imported if DISTRIBUTIONS.get(m, m).lower().replace("_", "-") not in declared}
    assert not missing, f"imported by the cluster code but not declared: {sorted(missing)}"


def test_no_private_modules_of_dependencies_are_imported() -> None:
    private = sorted(p for top, paths in _imports(generated=False).items() if top in _third_party({top})
                     for p in paths if any(part.startswith("_") for part in p.split(".")[1:]))
    assert not private, f"private modules of dependencies imported: {private}"
