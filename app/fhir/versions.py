"""The FHIR versions this server speaks and the fhirVersion MIME parameter.

Spec R4B http.html#version-parameter and capabilities.html#versions: a client names the
version it wants as `fhirVersion=4.0` on the media type (Accept for responses,
Content-Type for bodies); an unsupported one is 406 (Accept) or 415 (Content-Type);
`GET [base]/$versions` lists the versions and the default.

The records are R4B (4.3.0) content, which for every resource type both versions share is
R4 (4.0.1) content too: R4B changed the medicinal-product and evidence resources and added
SubscriptionTopic and SubscriptionStatus. Chosen default: 4.0, because most clients and
the SDOHCC IG are R4 and a strict R4 client refuses a server whose CapabilityStatement
says 4.3.0. Asked for 4.0, the CapabilityStatement says 4.0.1 and lists only the types R4
has (schemas/fhir/r4_resource_types.json); asked for 4.3, it says 4.3.0 and lists them all.
"""

from __future__ import annotations

from functools import cache

import orjson

from app.fhir.errors import NotAcceptable, UnsupportedMediaType
from app.fhir.registry import SCHEMAS_DIR

# The versions by their MIME parameter value, with the release each names.
RELEASES = {"4.0": "4.0.1", "4.3": "4.3.0"}
DEFAULT = "4.0"


@cache
def r4_resource_types() -> frozenset[str]:
    """The resource types FHIR R4 defines."""
    data = orjson.loads((SCHEMAS_DIR / "r4_resource_types.json").read_bytes())
    return frozenset(data["resourceTypes"])


def _parameter(media: str) -> str | None:
    """The fhirVersion parameter of one media range, None when it has none."""
    for part in media.split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "fhirversion":
            return value.strip().strip('"')
    return None


def _known(value: str) -> str | None:
    """The supported version a parameter value names (4.0 and 4.0.1 both name 4.0)."""
    for version, release in RELEASES.items():
        if value in (version, release):
            return version
    return None


def accepted(accept: str | None) -> str | None:
    """The version an Accept header (or _format) asks for; None when it names none.
    406 when every version it names is one this server does not speak."""
    if not accept:
        return None
    named = [v for v in (_parameter(m) for m in accept.split(",")) if v is not None]
    if not named:
        return None
    for value in named:
        if (version := _known(value)) is not None:
            return version
    raise NotAcceptable(
        f"fhirVersion={named[0]} is not served; this server speaks "
        f"{', '.join(RELEASES)} (GET [base]/$versions)"
    )


def check_body_version(content_type: str | None) -> None:
    """415 for a body whose Content-Type names a version this server does not speak."""
    value = _parameter(content_type or "")
    if value is not None and _known(value) is None:
        raise UnsupportedMediaType(
            f"Content-Type names fhirVersion={value}; this server accepts "
            f"{', '.join(RELEASES)} (GET [base]/$versions)"
        )


def versions_parameters() -> dict[str, object]:
    """The answer of $versions (capabilities.html#versions)."""
    return {
        "resourceType": "Parameters",
        "parameter": [
            *({"name": "version", "valueCode": v} for v in RELEASES),
            {"name": "default", "valueCode": DEFAULT},
        ],
    }
