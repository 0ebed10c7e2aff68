"""Assessment scoring on the one write path: a QuestionnaireResponse to AUDIT, K10 or PHQ-9
is checked before it is written, and its score Observation is written (or updated, or
deleted) in the same transaction, by the same caller, with the Flag of any risk its answers
raise (app/fhir/instruments.py)."""

from __future__ import annotations

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
from app.services.resources import ResourceService, WriteEvent
from app.storage.repository import Repository, StoredVersion

_TYPE = "QuestionnaireResponse"
_SCORE = "Observation"
_FLAG = "Flag"


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
        """Write the score Observation of a scored response (drop it when the response is
        deleted or no longer scored, e.g. amended back to in-progress), and keep the Flag of
        the risks its answers raise."""
        if event.resource_type != _TYPE:
            return
        score = score_response(event.resource) if event.resource is not None else None
        self._keep_score(repo, event, score)
        self._keep_flag(repo, event, score)

    def _keep_score(self, repo: Repository, event: WriteEvent, score: Score | None) -> None:
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

    def _keep_flag(self, repo: Repository, event: WriteEvent, score: Score | None) -> None:
        """A raised risk is an active Flag on the client; once the answers no longer raise
        it the Flag becomes inactive (entered-in-error with the response deleted): a risk
        once recorded stays in the client's record."""
        identifier = flag_id(event.resource_id)
        repo.lock_type(_FLAG, exclusive=False)
        repo.lock(f"{_FLAG}/{identifier}")
        current = repo.current(_FLAG, identifier)
        live = current is not None and not current.deleted and current.body is not None
        if score is not None and score.flags and event.resource is not None:
            flag = risk_flag(event.resource, event.resource_id, score)
            if not live:
                flag = check_resource(flag, resource_type=_FLAG, resource_id=None)
                self._resources.create_in(repo, event.caller, _FLAG, flag, resource_id=identifier)
                return
            flag["id"] = identifier
        elif live:
            assert current is not None and current.body is not None
            flag = loads_stored(current.body)
            status = "entered-in-error" if event.resource is None else "inactive"
            if flag.get("status") == status:
                return
            flag["status"] = status
        else:
            return
        flag = check_resource(flag, resource_type=_FLAG, resource_id=identifier)
        self._resources.update_in(
            repo, event.caller, _FLAG, identifier, flag, None, type_locked=True
        )
