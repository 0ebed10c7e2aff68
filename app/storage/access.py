"""The agency access rule as SQL: which rows one agency may see (docs/threat-model.md).

An agency sees a resource when
  (0) it is directory data (Organization, HealthcareService, Questionnaire, ...), or
  (1) it owns it, or nobody does (no owner row: directory data the local operator wrote), or
  (2) a referral Task naming the agency as owner or requester shares it (access_grant,
      written only for records the sharing agency owns: app/security/policy.py) and
      - basis "referral" (the Task, its ServiceRequest) and the resource is not labelled
        sensitive, or
      - a Consent of the client that the resource's owner recorded is in force for the
        agency now (consent_grant), allowing labelled data too when the resource is
        labelled.
It is applied as conditions in every listing query, so paging and totals stay right; it
reads only primary keys and small indexes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    bindparam,
    func,
    literal_column,
    not_,
    or_,
    select,
)

from app.storage.tables import access_grant_table, consent_grant_table, resource_owner_table
from app.storage.types import UTCDateTime

OWN = resource_owner_table.c
G = access_grant_table.c
C = consent_grant_table.c


# The agency and the instant are bound at execution (AccessScope.parameters), so the clause
# is built once per pair of columns and SQLAlchemy's compiled-statement cache applies:
# building it per request cost about 2 ms of Python, more than the query itself.
AGENCY = bindparam("access_agency", type_=String())
NOW = bindparam("access_now", type_=UTCDateTime())


@lru_cache(maxsize=128)
def visible_clause(
    type_col: Any, id_col: Any, shared_types: tuple[str, ...]
) -> ColumnElement[bool]:
    """The access rule for (type_col, id_col), in terms of the AGENCY and NOW parameters.

    Written as scalar subqueries (LIMIT 1 probes by key) rather than EXISTS: inside an OR,
    PostgreSQL may turn an EXISTS into a hashed subplan that reads the whole table on every
    query (a search went from 78 ms to 4.6 s). A key probe per candidate row costs
    microseconds, and OR evaluates left to right, so an agency's own records never reach
    the referral and consent probes.
    """
    key = (OWN.resource_type == type_col, OWN.resource_id == id_col)
    # '' for an owner row without agency (the operator's), NULL for no row at all.
    owner = select(func.coalesce(OWN.agency, "")).where(*key).limit(1).scalar_subquery()
    # Used two and three levels down (inside the share and consent probes), where automatic
    # correlation would look only at the enclosing access_grant probe and so add the outer
    # table to this FROM: a cross join answering for some arbitrary row, not the candidate.
    sensitive = func.coalesce(
        select(OWN.sensitive)
        .where(*key)
        .limit(1)
        .correlate_except(resource_owner_table)
        .scalar_subquery(),
        False,
    ).is_(True)
    consent = (
        select(literal_column("1"))
        .where(
            C.patient_id == G.patient_id,
            C.agency == AGENCY,
            # Only an owner shares: the consent must be one its records' owner recorded.
            C.grantor == G.grantor,
            or_(C.starts.is_(None), C.starts <= NOW),
            or_(C.ends.is_(None), C.ends > NOW),
            or_(C.sensitive_ok.is_(True), not_(sensitive)),
        )
        .limit(1)
        .scalar_subquery()
    )
    shared = (
        select(literal_column("1"))
        .where(
            G.resource_type == type_col,
            G.resource_id == id_col,
            G.agency == AGENCY,
            or_(and_(G.basis == "referral", not_(sensitive)), consent.is_not(None)),
        )
        .limit(1)
        .scalar_subquery()
    )
    directory = (type_col.in_(shared_types),) if shared_types else ()
    mine = func.coalesce(owner, AGENCY) == AGENCY
    return or_(*directory, mine, shared.is_not(None))


@dataclass(frozen=True, slots=True)
class AccessScope:
    """The rows one agency may see at one instant."""

    agency: str
    now: datetime
    # Types every agency may read (the directory: app/security/policy.py).
    shared_types: tuple[str, ...] = ()

    def visible(self, type_col: Any, id_col: Any) -> ColumnElement[bool]:
        """True for a (type, id) this agency may see; type_col and id_col are columns of
        the query's own table (resource, resource_version, index tables). A statement
        holding it runs with parameters() added to its own."""
        return visible_clause(type_col, id_col, self.shared_types)

    def parameters(self) -> dict[str, Any]:
        """The values of the rule's parameters."""
        return {"access_agency": self.agency, "access_now": self.now}

    def consent_for(self, patient_id: str) -> Any:
        """The ids of the client's consents in force for this agency (disclosure records)."""
        return select(C.consent_id).where(
            C.patient_id == patient_id,
            C.agency == self.agency,
            or_(C.starts.is_(None), C.starts <= self.now),
            or_(C.ends.is_(None), C.ends > self.now),
        )
