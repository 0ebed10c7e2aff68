"""An accounting of disclosures as FHIR: one AuditEvent per release of a client's record
to another agency (IHE BALP-style, https://profiles.ihe.net/ITI/BALP/; ISO 21089 "disclose"),
in a searchset Bundle (Patient/{id}/$disclosures)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from app.clock import format_instant

_LIFECYCLE = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"
_RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_AGENT_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


def disclosure_event(row: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    """One disclosure row as an AuditEvent (not stored: generated from the log)."""
    entity: list[dict[str, Any]] = [
        {
            "what": {
                "reference": f"{row['resource_type']}/{row['resource_id']}",
            },
            "type": {"system": _RESOURCE_TYPES, "code": row["resource_type"]},
            "role": {"system": _ROLE, "code": "4", "display": "Domain Resource"},
            "detail": [
                {"type": "versionId", "valueString": str(row["version_id"])},
                {"type": "interaction", "valueString": row["interaction"]},
                {"type": "sensitive", "valueString": "true" if row["sensitive"] else "false"},
            ],
        }
    ]
    if row["patient_id"]:
        entity.append(
            {
                "what": {"reference": f"Patient/{row['patient_id']}"},
                "type": {"system": _RESOURCE_TYPES, "code": "Patient"},
                "role": {"system": _ROLE, "code": "1", "display": "Patient"},
            }
        )
    if row["consent_id"]:
        entity.append(
            {
                "what": {"reference": f"Consent/{row['consent_id']}"},
                "type": {"system": _RESOURCE_TYPES, "code": "Consent"},
            }
        )
    agents: list[dict[str, Any]] = [
        {
            "type": {"coding": [{"system": _AGENT_TYPE, "code": "IRCP"}]},
            "who": {"reference": row["agency"]},
            "requestor": True,
        }
    ]
    if row["owner_agency"]:
        agents.append(
            {
                "type": {
                    "coding": [{"system": _AGENT_TYPE, "code": "CST", "display": "custodian"}]
                },
                "who": {"reference": row["owner_agency"]},
                "requestor": False,
            }
        )
    return {
        "resourceType": "AuditEvent",
        "id": f"disclosure-{row['row_id']}",
        "type": {
            "system": _LIFECYCLE,
            "code": "disclose",
            "display": "Disclose Record Lifecycle Event",
        },
        "action": "R",
        "recorded": format_instant(row["disclosed_at"]),
        "outcome": "0",
        "agent": agents,
        "source": {"observer": {"display": base_url}},
        "entity": entity,
    }


def disclosures_bundle(
    rows: Sequence[Mapping[str, Any]], *, base_url: str, links: dict[str, str]
) -> bytes:
    """The report: a searchset Bundle of generated AuditEvents, oldest first."""
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": rel, "url": url} for rel, url in links.items()],
    }
    if rows:
        bundle["entry"] = [
            {"resource": disclosure_event(row, base_url), "search": {"mode": "match"}}
            for row in rows
        ]
    return orjson.dumps(bundle)
