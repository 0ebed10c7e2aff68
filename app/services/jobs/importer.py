"""Import of NDJSON and Bundle files (or directories of them): `casebridge import`.

Every file goes through the bulk loader (app.services.jobs.bulk: the same validation as an HTTP
create, batched writes). Resources that carry an id keep it, and an id that already exists
is left as it is and counted as skipped, so importing the same files again stores nothing
twice. A Bundle file (any Bundle.type) contributes its entries' resources, entry by entry;
its references are stored as written (urn:uuid references between entries are not rewritten:
post such a Bundle to POST /fhir as a transaction instead).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

import orjson
from sqlalchemy.engine import Engine

from app.config import Settings
from app.fhir.errors import FHIRError, Issue
from app.fhir.jsonio import dumps, parse_json
from app.services.jobs.bulk import LineFailure, LoadProgress, LoadSummary, load_ndjson

SUFFIXES: Final = (".ndjson", ".jsonl", ".json")


@dataclass(frozen=True, slots=True)
class FileResult:
    """What one file gave: its summary, and what its line numbers count (line or entry)."""

    path: Path
    summary: LoadSummary
    unit: str  # "line" for NDJSON, "entry" for a Bundle, "resource" for one resource

    def where(self, failure: LineFailure) -> str:
        """file:line (or file:entry[n]) of a failure, as an editor or a person reads it."""
        if self.unit == "entry":
            return f"{self.path}:entry[{failure.line - 1}]"
        return f"{self.path}:{failure.line}"


def sources(paths: Iterable[Path]) -> list[Path]:
    """The files to import: files as given, directories searched for SUFFIXES (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path} is neither a file nor a directory")
    return found


def _as_ndjson(path: Path, settings: Settings) -> tuple[Path | IO[bytes], str]:
    """NDJSON files pass through; a .json file becomes one line per resource it holds."""
    if path.suffix != ".json":
        return path, "line"
    document = parse_json(path.read_bytes(), max_depth=settings.max_json_depth)
    if isinstance(document, dict) and document.get("resourceType") == "Bundle":
        entries = document.get("entry")
        lines = [
            dumps(entry.get("resource") if isinstance(entry, dict) else None)
            for entry in (entries if isinstance(entries, list) else [])
        ]
        return io.BytesIO(b"\n".join(lines)), "entry"
    return io.BytesIO(dumps(document)), "resource"


def import_paths(
    paths: Sequence[Path],
    *,
    engine: Engine,
    settings: Settings,
    workers: int | None = None,
    batch_size: int | None = None,
    on_file: Callable[[Path, int], None] | None = None,
    on_progress: Callable[[LoadProgress], None] | None = None,
    agency: str | None = None,
) -> list[FileResult]:
    """Import every file; a file that is not JSON at all is reported and the rest go on."""
    results = []
    for path in sources(paths):
        if on_file is not None:
            on_file(path, path.stat().st_size)
        try:
            source, unit = _as_ndjson(path, settings)
        except FHIRError as exc:
            summary = LoadSummary(failed=1, failures=[LineFailure(1, tuple(exc.issues))])
            results.append(FileResult(path, summary, "line"))
            continue
        except (OSError, orjson.JSONDecodeError) as exc:
            issue = Issue("structure", f"The file cannot be read as JSON: {exc}"[:300])
            summary = LoadSummary(failed=1, failures=[LineFailure(1, (issue,))])
            results.append(FileResult(path, summary, "line"))
            continue
        summary = load_ndjson(
            source,
            engine=engine,
            settings=settings,
            workers=workers,
            batch_size=batch_size,
            on_progress=on_progress,
            skip_existing=True,
            agency=agency,
        )
        results.append(FileResult(path, summary, unit))
    return results
