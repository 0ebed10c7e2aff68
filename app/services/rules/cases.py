"""The case-management process on every write path: a WriteRule of the write pipeline.

A case's stage changes and its closing are checked wherever the EpisodeOfCare is written
(PUT /cases/{id}, PUT or PATCH /fhir/EpisodeOfCare, transaction entries), by the rules of
app/fhir/case_process.py: skipping a stage is warned, closing needs a reason and a summary,
and a case closing with care plans or referrals still open is warned about them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.clock import Clock
from app.fhir.case_process import (
    OPEN_PLAN_STATUSES,
    check_stage_change,
    open_items_warnings,
)
from app.fhir.referral import OPEN, is_referral, reference_of
from app.services.rules.referrals import body_of
from app.services.writes import FollowUp, WriteEvent
from app.storage.repository import Repository, StoredVersion
from mappings.casework import case_of

# The client's records looked at when a case closes; more are not named one by one.
_MAX_OPEN = 200


class CaseProcess:
    """WriteRule: the process stages and closure of a case (EpisodeOfCare)."""

    def __init__(self, *, clock: Clock) -> None:
        self._clock = clock

    def before_write(self, repo: Repository, event: WriteEvent) -> bool:
        """Warn about a skipped stage; refuse a closing without reason and summary; warn
        about what the closing case leaves open; date the end of a case that closes."""
        if event.resource_type != "EpisodeOfCare" or event.resource is None:
            return False
        new = event.resource
        warnings, closing = check_stage_change(body_of(event.current), new)
        event.issues.extend(warnings)
        if not closing:
            return False
        client = reference_of(new.get("patient"))
        if client is not None and client.startswith("Patient/"):
            plans, referrals = self._open_items(repo, event.resource_id, client.split("/", 1)[1])
            event.issues.extend(open_items_warnings(plans, referrals))
        period = new.get("period")
        if not isinstance(period, dict) or not period.get("end"):
            # A closed case has an end: the caseload and the reports count by it.
            today = self._clock.now().date().isoformat()
            start = period.get("start") if isinstance(period, dict) else None
            new["period"] = {**({"start": start} if start else {}), "end": today}
            if isinstance(start, str) and start[:10] > today:
                new["period"]["end"] = start[:10]
            return True
        return False

    @staticmethod
    def _open_items(repo: Repository, case_id: str, client_id: str) -> tuple[list[str], list[str]]:
        """The case's care plans in force and the client's open referrals, as the writer
        may see them (a hidden one is not named)."""
        plans: list[str] = []
        for plan_id in sorted(
            repo.referencing("CarePlan", None, "Patient", [client_id], _MAX_OPEN)
        ):
            plan = body_of(repo.visible_current("CarePlan", plan_id))
            if plan and case_of(plan) == case_id and plan.get("status") in OPEN_PLAN_STATUSES:
                plans.append(f"CarePlan/{plan_id}")
        referrals: list[str] = []
        for task_id in sorted(repo.referencing("Task", None, "Patient", [client_id], _MAX_OPEN)):
            task: dict[str, Any] | None = body_of(repo.visible_current("Task", task_id))
            if task and is_referral(task) and task.get("status") in OPEN:
                referrals.append(f"Task/{task_id}")
        return plans, referrals

    def after_write(
        self,
        repo: Repository,  # noqa: ARG002 (the WriteRule signature)
        event: WriteEvent,  # noqa: ARG002
        version: StoredVersion,  # noqa: ARG002
    ) -> Sequence[FollowUp]:
        """Nothing follows a case's write."""
        return ()


__all__ = ["CaseProcess"]
