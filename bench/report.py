"""The printed report: one rich table of figures, targets and PASS/MISS."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich import box
from rich.table import Table

from bench.loadgen import LoadResult
from bench.validation import ValidationResult

# The project's targets (they apply to SQLite, the default backend; PostgreSQL is shown
# against the same bars for information).
CREATE_RATE = 700.0
CREATE_P99_MS = 50.0
READ_RATE = 4000.0
READ_P99_MS = 10.0
RATIO = 0.5


@dataclass
class PhaseFigures:
    """One measured phase and the server CPU it cost."""

    result: LoadResult
    server_cpu_s: float
    host_busy: float


@dataclass
class BackendFigures:
    """Everything measured on one backend, or why it was not."""

    name: str
    phases: dict[str, PhaseFigures] = field(default_factory=dict)
    note: str | None = None
    # Who the requests act for: "operator", or the agency ("Organization/...").
    acting: str = "operator"

    @property
    def label(self) -> str:
        """The backend, and the agency when the requests acted for one."""
        return self.name if self.acting == "operator" else f"{self.name} as agency"


@dataclass(frozen=True)
class Verdict:
    """A target, what was measured against it, and whether it was met."""

    text: str
    met: bool


def _verdicts(phase: str, fig: PhaseFigures, validation: ValidationResult) -> list[Verdict]:
    res = fig.result
    p99 = res.p99_us / 1000
    if phase == "create":
        return [
            Verdict(f"≥{CREATE_RATE:,.0f}/s", res.rate >= CREATE_RATE),
            Verdict(f"p99<{CREATE_P99_MS:.0f}ms", p99 < CREATE_P99_MS),
        ]
    if phase == "read":
        return [
            Verdict(f"≥{READ_RATE:,.0f}/s", res.rate >= READ_RATE),
            Verdict(f"p99<{READ_P99_MS:.0f}ms", p99 < READ_P99_MS),
        ]
    if phase == "ratio":
        return [Verdict(f"≥{RATIO}", res.rate / validation.per_second >= RATIO)]
    return []


def _result_cell(verdicts: list[Verdict], binding: bool) -> str:
    if not verdicts:
        return ""
    missed = [v.text for v in verdicts if not v.met]
    if binding:
        return "[green]PASS" if not missed else f"[red]MISS[/] {', '.join(missed)}"
    return "[dim]info: pass" if not missed else f"[dim]info: miss {', '.join(missed)}"


def misses(backends: list[BackendFigures], validation: ValidationResult) -> list[str]:
    """The binding (SQLite) targets that were missed."""
    out: list[str] = []
    for backend in backends:
        if backend.name != "sqlite" or backend.acting != "operator":
            continue
        for phase, fig in backend.phases.items():
            checks = _verdicts(phase, fig, validation)
            if phase == "create":
                checks += _verdicts("ratio", fig, validation)
            out.extend(f"sqlite {phase}: {v.text}" for v in checks if not v.met)
    return out


def build_table(title: str, backends: list[BackendFigures], validation: ValidationResult) -> Table:
    """The report table: validation alone, then per backend create/read/update and the ratio."""
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left")
    for name, justify in [
        ("Backend", "left"),
        ("Measure", "left"),
        ("Rate", "right"),
        ("p50", "right"),
        ("p99", "right"),
        ("max", "right"),
        ("Requests", "right"),
        ("Err", "right"),
        ("Srv CPU/req", "right"),
        ("Gen CPU", "right"),
        ("Host CPU", "right"),
        ("Target", "left"),
        ("Result", "left"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_row(
        "—",
        "validation alone",
        f"{validation.per_second:,.0f}/s",
        f"{validation.median_us:,.0f} µs",
        "",
        "",
        f"{validation.count:,}",
        "",
        "",
        "",
        "",
        "",
        "",
    )
    for backend in backends:
        table.add_section()
        binding = backend.name == "sqlite" and backend.acting == "operator"
        if backend.note:
            status = backend.note.split(":", 1)[0]
            table.add_row(backend.label, f"[yellow]{status} (see below)", *[""] * 11)
        for phase, fig in backend.phases.items():
            res = fig.result
            verdicts = _verdicts(phase, fig, validation)
            per_req = fig.server_cpu_s / res.requests * 1000 if res.requests else 0.0
            errors = f"[red]{res.errors:,}" if res.errors else "0"
            table.add_row(
                backend.label,
                phase,
                f"{res.rate:,.0f}/s",
                f"{res.p50_us / 1000:.1f} ms",
                f"{res.p99_us / 1000:.1f} ms",
                f"{res.max_us / 1000:.0f} ms",
                f"{res.requests:,}",
                errors,
                f"{per_req:.2f} ms",
                f"{res.generator_cpu_s / res.duration_s * 100:.0f}%",
                f"{fig.host_busy * 100:.0f}%",
                ", ".join(v.text for v in verdicts) or "",
                _result_cell(verdicts, binding),
            )
        create = backend.phases.get("create")
        if create is not None:
            verdicts = _verdicts("ratio", create, validation)
            table.add_row(
                backend.label,
                "creates/s ÷ validation/s",
                f"{create.result.rate / validation.per_second:.2f}",
                *[""] * 8,
                verdicts[0].text,
                _result_cell(verdicts, binding),
            )
    return table
