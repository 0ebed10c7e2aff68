"""The official hl7.fhir.r4b.core@4.3.0 package (CC0), for the checks that the committed
tables under schemas/fhir are what their generators make of it.

`make test` fetches it with npm into .cache/ and names it in CASEBRIDGE_R4B_PACKAGE.
Without it the checks are skipped, unless CASEBRIDGE_REQUIRE_R4B_PACKAGE=1 (set by .ci/run),
in which case they fail: CI must not lose them silently.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
_CANDIDATES = (
    os.environ.get("CASEBRIDGE_R4B_PACKAGE", ""),
    str(ROOT / ".cache" / "r4b" / "package"),
    "/tmp/r4b/package",
)


def r4b_package() -> Path:
    """The unpacked package/ directory; skips (or fails when required) without it."""
    for candidate in _CANDIDATES:
        if candidate and (Path(candidate) / "package.json").is_file():
            return Path(candidate)
    reason = "hl7.fhir.r4b.core@4.3.0 is not unpacked (make test fetches it with npm)"
    if os.environ.get("CASEBRIDGE_REQUIRE_R4B_PACKAGE") == "1":
        pytest.fail(f"{reason}; CASEBRIDGE_REQUIRE_R4B_PACKAGE=1")
    pytest.skip(reason)


_R4_EXAMPLES = (
    os.environ.get("CASEBRIDGE_R4_EXAMPLES", ""),
    str(ROOT / ".cache" / "r4-examples" / "package"),
    "/tmp/r4/package",
)


def r4_examples_package() -> Path:
    """hl7.fhir.r4.examples@4.0.1 unpacked (R4's StructureDefinitions are in it); skips,
    or fails under CASEBRIDGE_REQUIRE_R4B_PACKAGE=1, without it."""
    for candidate in _R4_EXAMPLES:
        if candidate and (Path(candidate) / "package.json").is_file():
            return Path(candidate)
    reason = "hl7.fhir.r4.examples@4.0.1 is not unpacked (make test fetches it with npm)"
    if os.environ.get("CASEBRIDGE_REQUIRE_R4B_PACKAGE") == "1":
        pytest.fail(f"{reason}; CASEBRIDGE_REQUIRE_R4B_PACKAGE=1")
    pytest.skip(reason)


def load_generator(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """scripts/{name}.py as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look it up
    spec.loader.exec_module(module)
    return module
