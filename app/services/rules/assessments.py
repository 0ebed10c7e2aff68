"""Assessment scoring on the one write path: a QuestionnaireResponse to AUDIT, K10 or PHQ-9
is checked before it is written, and its score Observation is written (or updated, or
deleted) in the same transaction, by the same caller, with the Flag of any risk its answers
raise (app/fhir/instruments.py). Both are follow-up writes of the pipeline
(app/services/writes.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.fhir.instruments import (
    Score,
    flag_id,
    risk_flag,
    score_observation,
    score_observation_id,
    score_response,
)
from app.fhir.jsonio import loads_stored
from app.fhir.validation import check_resource
from app.services.writes import FollowUp, WriteEvent
from app.storage.repository import Repository, StoredVersion

_TYPE = "QuestionnaireResponse"
_SCORE = "Observation"
_FLAG = "Flag"


class AssessmentScoring:
    """WriteRule: refuse invalid or incomplete answers (422); keep the score Observation.

    k10_bands: the K10 bands totals are read on (CASEBRIDGE_K10_BANDS)."""

    def __init__(self, *, k10_bands: str = "clinical") -> None:
        self._k10_bands = k10_bands

    def before_write(self, repo: Repository, event: WriteEvent) -> bool:  # noqa: ARG002
        """Check the answers before anything is stored (raises ResourceInvalid)."""
        if event.resource_type == _TYPE and event.resource is not None:
            score_response(event.resource, k10_bands=self._k10_bands)
        return False

    def after_write(
        self,
        repo: Repository,
        event: WriteEvent,
        version: StoredVersion,  # noqa: ARG002 (the WriteRule signature)
    ) -> Sequence[FollowUp]:
        """The score Observation of a scored response (dropped when the response is
        deleted or no longer scored, e.g. amended back to in-progress), and the Flag of
        the risks its answers raise."""
        if event.resource_type != _TYPE:
            return ()
        score = (
            score_response(event.resource, k10_bands=self._k10_bands)
            if event.resource is not None
            else None
        )
        follow_ups = [self._score(event, score)]
        flag = self._flag(repo, event, score)
        if flag is not None:
            follow_ups.append(flag)
        return follow_ups

    @staticmethod
    def _score(event: WriteEvent, score: Score | None) -> FollowUp:
        observation_id = score_observation_id(event.resource_id)
        if score is None or event.resource is None:
            return FollowUp(_SCORE, observation_id, None)
        observation = score_observation(event.resource, event.resource_id, score)
        return FollowUp(_SCORE, observation_id, _checked(_SCORE, observation_id, observation))

    @staticmethod
    def _flag(repo: Repository, event: WriteEvent, score: Score | None) -> FollowUp | None:
        """A raised risk is an active Flag on the client; once the answers no longer raise
        it the Flag becomes inactive (entered-in-error with the response deleted): a risk
        once recorded stays in the client's record."""
        identifier = flag_id(event.resource_id)
        if score is not None and score.flags and event.resource is not None:
            flag = risk_flag(event.resource, event.resource_id, score)
            return FollowUp(_FLAG, identifier, _checked(_FLAG, identifier, flag))
        # Locked before it is read: the follow-up writes what this read, and no other
        # writer may change the Flag in between (PostgreSQL runs writers concurrently).
        repo.lock_for_write(_FLAG, identifier)
        current = repo.current(_FLAG, identifier)
        if current is None or current.deleted or current.body is None:
            return None
        flag = loads_stored(current.body)
        status = "entered-in-error" if event.resource is None else "inactive"
        if flag.get("status") == status:
            return None
        flag["status"] = status
        return FollowUp(_FLAG, identifier, _checked(_FLAG, identifier, flag))


def _checked(resource_type: str, resource_id: str, resource: dict[str, Any]) -> dict[str, Any]:
    resource["id"] = resource_id
    return check_resource(resource, resource_type=resource_type, resource_id=resource_id)
