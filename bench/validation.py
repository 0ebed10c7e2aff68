"""fhir.resources validation of the benchmark CarePlan alone, in this process, in a loop."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from fhir.resources.R4B import get_fhir_model_class

from bench.payload import care_plan


@dataclass(frozen=True)
class ValidationResult:
    """Validations per second and the median time of one validation."""

    count: int
    per_second: float
    median_us: float


def measure_validation(seconds: float, warmup: int = 200) -> ValidationResult:
    """Validate the CarePlan repeatedly for about `seconds` after `warmup` untimed rounds."""
    model = get_fhir_model_class("CarePlan")
    plan = care_plan()
    for _ in range(warmup):
        model.model_validate(plan)
    samples: list[float] = []
    clock = time.perf_counter
    started = clock()
    deadline = started + seconds
    while True:
        t0 = clock()
        model.model_validate(plan)
        t1 = clock()
        samples.append(t1 - t0)
        if t1 >= deadline:
            break
    elapsed = clock() - started
    return ValidationResult(
        count=len(samples),
        per_second=len(samples) / elapsed,
        median_us=statistics.median(samples) * 1e6,
    )
