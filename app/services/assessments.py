"""Assessment scoring on the one write path: a QuestionnaireResponse to AUDIT, K10 or PHQ-9
is checked before it is written, and its score Observation is written (or updated, or
deleted) in the same transaction, by the same caller (app/fhir/instruments.py)."""

from __future__ import annotations

from app.fhir.instruments import score_observation, score_observation_id, score_response
from app.fhir.validation import check_resource
from app.services.resources import ResourceService, WriteEvent
from app.storage.repository import Repository, StoredVersion

_TYPE = "QuestionnaireResponse"
_SCORE = "Observation"


class AssessmentScoring:
    """WriteHook: refuse invalid or incomplete answers (422); keep the score Observation."""

    def __init__(self, resources: ResourceService) -> None:
        self._resources = resources

    def before_write(self, repo: Repository, event: WriteEvent) -> bool:  # noqa: ARG002
        """Check the answers before anything is stored (raises ResourceInvalid)."""
        if event.resource_type == _TYPE and event.resource is not None:
            score_response(event.resource)
        return False

    def after_write(self, repo: Repository, event: WriteEvent, version: StoredVersion) -> None:  # noqa: ARG002
        """Write the score Observation of a scored response; drop it when the response is
        deleted or no longer scored (e.g. amended back to in-progress)."""
        if event.resource_type != _TYPE:
            return
        score = score_response(event.resource) if event.resource is not None else None
        observation_id = score_observation_id(event.resource_id)
        repo.lock_type(_SCORE, exclusive=False)
        repo.lock(f"{_SCORE}/{observation_id}")
        current = repo.current(_SCORE, observation_id)
        live = current is not None and not current.deleted
        if score is None or event.resource is None:
            if live:
                self._resources.delete_in(
                    repo, event.caller, _SCORE, observation_id, None, type_locked=True
                )
            return
        observation = score_observation(event.resource, event.resource_id, score)
        if not live:
            observation = check_resource(observation, resource_type=_SCORE, resource_id=None)
            self._resources.create_in(
                repo, event.caller, _SCORE, observation, resource_id=observation_id
            )
            return
        observation["id"] = observation_id
        observation = check_resource(observation, resource_type=_SCORE, resource_id=observation_id)
        self._resources.update_in(
            repo, event.caller, _SCORE, observation_id, observation, None, type_locked=True
        )
