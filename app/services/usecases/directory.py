"""The service directory: what each agency offers (FHIR HealthcareService, its type from
the AOD service types, its place a Location), found by type and place, and whether it is
taking new referrals.

Capacity is FHIR's own: a service not taking referrals has a `notAvailable` entry ("Not
taking new referrals") whose period has begun and not ended; taking them again ends that
period. HealthcareService and Location are directory data every agency may read; only the
agency that provides a service changes it (the write pipeline's access rules).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

import orjson

from app.clock import Clock, format_instant
from app.fhir.errors import FHIRError, NotFound, ResourceInvalid
from app.fhir.jsonio import loads_stored
from app.security.caller import Caller
from app.services.uow import transaction
from app.services.usecases.bundle import BundleService
from app.services.usecases.resources import ResourceService
from app.services.usecases.search import SearchService
from schemas.conformance import codes, display, system

AT_CAPACITY: Final = "Not taking new referrals"
_TYPE_SYSTEM: Final = system("aod-service-type")


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    """One service as the directory shows it."""

    id: str
    name: str
    agency: str | None
    agency_name: str | None
    service_type: str | None
    place: str | None
    accepting: bool
    version_id: int


def accepting(service: dict[str, Any], now: dt.datetime) -> bool:
    """Whether a service takes new referrals now: active, and no notAvailable period that
    has begun and not ended."""
    if service.get("active") is False:
        return False
    moment = format_instant(now)
    for entry in service.get("notAvailable") or []:
        during = entry.get("during") if isinstance(entry, dict) else None
        if not isinstance(during, dict):
            return False
        start, end = during.get("start"), during.get("end")
        if (start is None or str(start) <= moment) and (end is None or str(end) > moment):
            return False
    return True


class DirectoryService:
    """Find services; an agency adds its own and switches their capacity."""

    def __init__(
        self,
        *,
        resources: ResourceService,
        search: SearchService,
        bundles: BundleService,
        clock: Clock,
    ) -> None:
        self._resources = resources
        self._search = search
        self._bundles = bundles
        self._clock = clock

    def find(
        self,
        *,
        caller: Caller,
        service_type: str | None = None,
        place: str | None = None,
        agency: str | None = None,
    ) -> list[ServiceEntry]:
        """Active services of a type (AOD service type code), in a place (a suburb, town or
        postcode the service's Location names), of an agency; by name."""
        params: list[tuple[str, str]] = [("active", "true")]
        if service_type:
            if service_type not in codes("aod-service-type"):
                raise ResourceInvalid(f"{service_type!r} is not an AOD service type")
            params.append(("service-type", f"{_TYPE_SYSTEM}|{service_type}"))
        if agency:
            params.append(("organization", agency))
        now = self._clock.now()
        wanted = (place or "").strip().lower()
        found = []
        scope = self._resources.scope(caller)
        with transaction(self._resources.engine, write=False, snapshot=True, scope=scope) as repo:
            for service in self._search.search_all(
                caller=caller,
                resource_type="HealthcareService",
                params=params,
                repo=repo,
                at_most=1000,
            ):
                where = self._place(repo, service)
                if wanted and wanted not in (where or "").lower():
                    continue
                provider = (service.get("providedBy") or {}).get("reference")
                found.append(
                    ServiceEntry(
                        id=str(service["id"]),
                        name=str(service.get("name") or "Service"),
                        agency=provider,
                        agency_name=self._name(repo, provider),
                        service_type=_type_of(service),
                        place=where,
                        accepting=accepting(service, now),
                        version_id=int((service.get("meta") or {}).get("versionId") or 1),
                    )
                )
        return sorted(found, key=lambda e: (not e.accepting, e.name.lower()))

    @staticmethod
    def _place(repo: Any, service: dict[str, Any]) -> str | None:
        for reference in service.get("location") or []:
            value = str((reference or {}).get("reference") or "")
            if value.startswith("Location/"):
                current = repo.visible_current("Location", value.split("/", 1)[1])
                if current is not None and current.body is not None:
                    address = loads_stored(current.body).get("address") or {}
                    parts = [address.get("city"), address.get("postalCode")]
                    return " ".join(str(p) for p in parts if p) or None
        return None

    @staticmethod
    def _name(repo: Any, reference: str | None) -> str | None:
        if not reference or not reference.startswith("Organization/"):
            return None
        current = repo.visible_current("Organization", reference.split("/", 1)[1])
        if current is None or current.body is None:
            return None
        name = loads_stored(current.body).get("name")
        return str(name) if name else None

    def add(
        self, *, caller: Caller, name: str, service_type: str, city: str, postcode: str | None
    ) -> str:
        """A service of the caller's agency at a place, in one transaction (a Location and
        the HealthcareService); its id."""
        if caller.agency is None:
            raise ResourceInvalid("A service belongs to an agency")
        if service_type not in codes("aod-service-type"):
            raise ResourceInvalid(f"{service_type!r} is not an AOD service type")
        address: dict[str, Any] = {"city": city.strip()}
        if postcode and postcode.strip():
            address["postalCode"] = postcode.strip()
        location = {"resourceType": "Location", "name": city.strip(), "address": address,
                    "managingOrganization": {"reference": caller.agency}}  # fmt: skip
        coding = {"system": _TYPE_SYSTEM, "code": service_type,
                  "display": display("aod-service-type", service_type)}  # fmt: skip
        service = {
            "resourceType": "HealthcareService",
            "active": True,
            "providedBy": {"reference": caller.agency},
            "type": [{"coding": [coding]}],
            "name": name.strip(),
            "location": [{"reference": "urn:uuid:place"}],
        }
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"fullUrl": "urn:uuid:place", "resource": location,
                 "request": {"method": "POST", "url": "Location"}},
                {"resource": service, "request": {"method": "POST", "url": "HealthcareService"}},
            ],
        }  # fmt: skip
        _kind, outcomes = self._bundles.process(orjson.dumps(bundle), caller=caller)
        version = outcomes[-1].version
        assert version is not None
        return version.id

    def set_accepting(
        self, *, caller: Caller, service_id: str, taking: bool, if_match: int | None
    ) -> None:
        """The capacity switch: taking new referrals, or not from now on."""
        try:
            found = self._resources.read(
                caller=caller, resource_type="HealthcareService", resource_id=service_id
            )
        except FHIRError as exc:
            raise NotFound(f"No service {service_id}") from exc
        if found.version.body is None:
            raise NotFound(f"No service {service_id}")
        service = loads_stored(found.version.body)
        if (service.get("providedBy") or {}).get("reference") != caller.agency:
            # Another agency's service reads as one that is not there to change.
            raise NotFound(f"No service {service_id} of your agency")
        now = format_instant(self._clock.now())
        kept = []
        for entry in service.get("notAvailable") or []:
            during = (entry or {}).get("during") or {}
            if entry.get("description") == AT_CAPACITY and not during.get("end"):
                if taking:
                    entry = {**entry, "during": {**during, "end": now}}
                else:
                    continue  # replaced by the one below
            kept.append(entry)
        if not taking:
            kept.append({"description": AT_CAPACITY, "during": {"start": now}})
        service["notAvailable"] = kept
        service.pop("meta", None)
        self._resources.update(
            caller=caller,
            resource_type="HealthcareService",
            resource_id=service_id,
            body=orjson.dumps(service),
            if_match=if_match,
        )


def _type_of(service: dict[str, Any]) -> str | None:
    for concept in service.get("type") or []:
        for coding in (concept or {}).get("coding") or []:
            if coding.get("system") == _TYPE_SYSTEM:
                return str(coding.get("code"))
    return None


__all__ = ["AT_CAPACITY", "DirectoryService", "ServiceEntry", "accepting"]
