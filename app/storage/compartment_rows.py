"""Compartments ($everything) in the repository: a compartment's members and what they
refer to, from the reference index (spec compartmentdefinition.html)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    union,
    union_all,
)

from app.records import StoredVersion
from app.storage.access import visible_clause
from app.storage.base import CURRENT_COLS, OnConnection, current_version
from app.storage.tables import reference_table, resource_table

R = resource_table.c


class CompartmentRows(OnConnection):
    """Compartment listings on the repository's connection."""

    def compartment_listing(
        self,
        *,
        owner_type: str,
        owner_id: str,
        links: Mapping[str, Sequence[str]],
        referenced_types: Sequence[str],
        types: Sequence[str] | None,
        since: datetime | None,
        after: tuple[str, str] | None,
        limit: int,
    ) -> list[tuple[StoredVersion, bool]]:
        """The live members of a compartment (spec compartmentdefinition.html) and the
        resources of ``referenced_types`` that members refer to, in (type, id) order, strictly
        after ``after``; each with True for a member, False for a referenced resource.

        ``links`` maps a resource type to the reference parameters that put it in the
        compartment; the owner itself is a member. Everything is read from the reference
        index (only live current versions have rows), never from bodies. ``types`` and
        ``since`` (last_updated >= since) filter members and referenced resources alike.
        """
        statement = _listing_statement(
            _links_key(links),
            referenced=bool(referenced_types),
            typed=types is not None,
            since=since is not None,
            after=after is not None,
            shared_types=self.scope.shared_types if self.scope is not None else None,
        )
        values: dict[str, Any] = {
            "c_owner_type": owner_type,
            "c_owner_id": owner_id,
            "c_limit": limit,
        }
        if referenced_types:
            values["c_referenced"] = sorted(referenced_types)
        if types is not None:
            values["c_types"] = sorted(types)
        if since is not None:
            values["c_since"] = since
        if after is not None:
            values["c_after_type"], values["c_after_id"] = after
        if self.scope is not None:
            statement = statement.where(*self._visible(R.resource_type, R.id))
        rows = self._conn.execute(statement, {**values, **self._access})
        return [(current_version(r), r[6] == 0) for r in rows]

    def count_compartment(
        self,
        *,
        owner_type: str,
        owner_id: str,
        links: Mapping[str, Sequence[str]],
        types: Sequence[str] | None,
        since: datetime | None,
    ) -> int:
        """How many live members compartment_listing lists (referenced resources not counted)."""
        statement = _count_statement(
            _links_key(links), typed=types is not None, since=since is not None
        )
        values: dict[str, Any] = {"c_owner_type": owner_type, "c_owner_id": owner_id}
        if types is not None:
            values["c_types"] = sorted(types)
        if since is not None:
            values["c_since"] = since
        if self.scope is not None:
            statement = statement.where(*self._visible(R.resource_type, R.id))
        return int(self._conn.execute(statement, {**values, **self._access}).scalar_one())


# Compartment statements are built once per shape, values bound at execution: building the
# many-branch OR of the patient compartment cost ten times more than running it.
LinksKey = tuple[tuple[str, tuple[str, ...]], ...]


def _links_key(links: Mapping[str, Sequence[str]]) -> LinksKey:
    return tuple(sorted((t, tuple(sorted(set(p)))) for t, p in links.items() if p))


def _compartment_members(links: LinksKey) -> Any:
    """(resource_type, resource_id) of the owner and of every resource whose link parameters
    refer to it: one lookup on the reference index's target index per linked type."""
    c = reference_table.c
    owner_type = bindparam("c_owner_type", type_=String())
    owner_id = bindparam("c_owner_id", type_=String())
    owner = select(R.resource_type, R.id.label("resource_id")).where(
        R.resource_type == owner_type, R.id == owner_id
    )
    if not links:
        return owner.cte("members")
    branches = [
        and_(
            c.resource_type == resource_type,
            c.param.in_(params),
            c.target_id == owner_id,
            c.target_type == owner_type,
        )
        for resource_type, params in links
    ]
    linked = select(c.resource_type, c.resource_id).where(or_(*branches))
    return union(owner, linked).cte("members")


def _listing_filters(*, typed: bool, since: bool) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = [R.deleted.is_(False)]
    if typed:
        filters.append(R.resource_type.in_(bindparam("c_types", expanding=True)))
    if since:
        filters.append(R.last_updated >= bindparam("c_since"))
    return filters


@lru_cache(maxsize=64)
def _listing_statement(
    links: LinksKey,
    *,
    referenced: bool,
    typed: bool,
    since: bool,
    after: bool,
    shared_types: tuple[str, ...] | None = None,
) -> Select[Any]:
    """The compartment listing; with shared_types (an agency's scope), references are
    followed only from members the agency may see: what a hidden member refers to would
    tell of it."""
    members = _compartment_members(links)
    listed: list[Select[Any]] = [
        select(members.c.resource_type, members.c.resource_id, literal_column("0").label("kind"))
    ]
    if referenced:
        ref = reference_table.alias("ref")
        listed.append(
            select(ref.c.target_type, ref.c.target_id, literal_column("1"))
            .join_from(
                members,
                ref,
                and_(
                    ref.c.resource_type == members.c.resource_type,
                    ref.c.resource_id == members.c.resource_id,
                ),
            )
            .where(
                ref.c.target_type.in_(bindparam("c_referenced", expanding=True)),
                ref.c.target_id.is_not(None),
                *(
                    (visible_clause(members.c.resource_type, members.c.resource_id, shared_types),)
                    if shared_types is not None
                    else ()
                ),
            )
        )
    both = union_all(*listed).subquery("listed")
    kinds = (
        select(both.c.resource_type, both.c.resource_id, func.min(both.c.kind).label("kind"))
        .group_by(both.c.resource_type, both.c.resource_id)
        .subquery("everything")
    )
    query = (
        select(*CURRENT_COLS, kinds.c.kind)
        .join_from(
            kinds,
            resource_table,
            and_(R.resource_type == kinds.c.resource_type, R.id == kinds.c.resource_id),
        )
        .where(*_listing_filters(typed=typed, since=since))
    )
    if after:
        after_type = bindparam("c_after_type", type_=String())
        after_id = bindparam("c_after_id", type_=String())
        query = query.where(
            or_(R.resource_type > after_type, and_(R.resource_type == after_type, R.id > after_id))
        )
    return query.order_by(R.resource_type, R.id).limit(bindparam("c_limit"))


@lru_cache(maxsize=64)
def _count_statement(links: LinksKey, *, typed: bool, since: bool) -> Select[Any]:
    members = _compartment_members(links)
    return (
        select(func.count())
        .select_from(members)
        .join(
            resource_table,
            and_(R.resource_type == members.c.resource_type, R.id == members.c.resource_id),
        )
        .where(*_listing_filters(typed=typed, since=since))
    )


__all__ = ["CompartmentRows"]
