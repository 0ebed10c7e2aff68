"""The project's CodeSystems, ValueSets and Questionnaires, kept as FHIR JSON under
schemas/fhir/, installed as resources with fixed ids when the app starts.

Storing them as ordinary resources means every FHIR search finds them (GET
/fhir/CodeSystem?url=..., /fhir/Questionnaire?url=...) and history shows each release.
Installation is idempotent: a resource whose stored content already equals the file is not
written again, so restarts and several processes starting at once add no versions.
"""

from __future__ import annotations

import copy
from typing import Any

from app.fhir.jsonio import loads_stored
from app.fhir.validation import check_resource
from app.security.caller import OPERATOR
from app.services.uow import transaction
from app.services.usecases.resources import ResourceService
from schemas.conformance import conformance_resources


def _content(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "meta"}


class ConformanceService:
    """Install the project's conformance resources."""

    def __init__(self, resources: ResourceService) -> None:
        self._resources = resources

    def install(self) -> list[str]:
        """Create or update each resource whose stored content differs from its file;
        returns the "Type/id" of those written. Acts as the local operator: the
        definitions belong to the server, not to an agency."""
        written = []
        with transaction(self._resources.engine, write=True) as repo:
            for original in conformance_resources():
                resource = copy.deepcopy(original)
                resource_type, resource_id = resource["resourceType"], resource["id"]
                repo.lock_for_write(resource_type, resource_id)
                current = repo.current(resource_type, resource_id)
                if (
                    current is not None
                    and current.body is not None
                    and _content(loads_stored(current.body)) == resource
                ):
                    continue
                checked = check_resource(
                    resource, resource_type=resource_type, resource_id=resource_id
                )
                self._resources.update_in(repo, OPERATOR, resource_type, resource_id, checked, None)
                written.append(f"{resource_type}/{resource_id}")
        return written
