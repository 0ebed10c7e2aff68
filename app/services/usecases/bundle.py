"""batch and transaction Bundles: POST [base] (spec http.html#transaction).

A transaction is one database transaction: every entry commits or none does. Entries are
validated before the write transaction opens; inside it the server resolves the ids of
POST and conditional entries, rewrites urn:uuid and conditional references anywhere in the
resources, and writes in the order the spec gives (DELETE, POST, PUT/PATCH), whatever the
order of the entries. GET entries are answered after the commit. A batch runs each entry
as its own interaction and reports each outcome in its response entry.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, urlsplit

from app.clock import format_instant
from app.config import Settings
from app.fhir.errors import (
    FHIRError,
    InvalidRequest,
    Issue,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    StructureError,
    TooCostly,
    operation_outcome,
)
from app.fhir.jsonio import parse_json
from app.fhir.registry import is_resource_type, is_valid_id
from app.fhir.resource import etag, none_match, parse_etag
from app.fhir.validation import check_resource
from app.search.criteria import parse_criteria
from app.search.query import Context
from app.security.caller import Caller
from app.security.scopes import require
from app.services.disclosure import DisclosureLog
from app.services.request_audit import note_interaction
from app.services.uow import transaction
from app.services.usecases.resources import ResourceService, WriteResult
from app.services.usecases.search import SearchPage, SearchService
from app.services.writes import JsonPatchDocument
from app.storage.repository import Repository, StoredVersion

_T = TypeVar("_T")
# Processing order inside a transaction (spec http.html#trules).
_ORDER: Final = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_STATUS_TEXT: Final = {200: "200 OK", 201: "201 Created", 204: "204 No Content"}


@dataclass
class Entry:
    """One request entry, parsed and (for bodies) validated."""

    index: int
    method: str
    url: str
    resource_type: str
    resource_id: str | None = None
    version_id: str | None = None
    query: list[tuple[str, str]] | None = None
    full_url: str | None = None
    resource: dict[str, Any] | None = None
    patch: JsonPatchDocument | None = None
    if_none_exist: list[tuple[str, str]] | None = None
    if_match: int | None = None
    if_none_match: str | None = None
    # Settled inside the transaction.
    target_id: str | None = None
    skip_write: bool = False


@dataclass
class Outcome:
    """What one entry did: its status, the version it wrote or read, or an error/result."""

    status: int
    version: StoredVersion | None = None
    location: bool = False
    page: SearchPage | None = None
    error: FHIRError | None = None
    # For a search entry: its type, for the links of the nested searchset.
    resource_type: str | None = None
    # Warnings about what the entry wrote (Bundle.entry.response.outcome).
    issues: tuple[Issue, ...] = ()


class BundleService:
    """POST [base] with a Bundle of type batch or transaction."""

    def __init__(
        self,
        *,
        resources: ResourceService,
        search: SearchService,
        settings: Settings,
        disclosures: DisclosureLog,
    ) -> None:
        self._disclosures = disclosures
        self._resources = resources
        self._search = search
        self._settings = settings

    # -- entry points -------------------------------------------------------------------
    def process(self, body: bytes, *, caller: Caller) -> tuple[str, list[Outcome]]:
        """Run a batch or transaction; returns the Bundle type and one outcome per entry."""
        bundle = parse_json(body, max_depth=self._settings.max_json_depth)
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise InvalidRequest("POST to the base takes a Bundle (batch or transaction)")
        kind = bundle.get("type")
        if kind not in ("batch", "transaction"):
            raise InvalidRequest(
                f"Bundle.type must be batch or transaction, not {kind!r}",
                expression=("Bundle.type",),
            )
        note_interaction(kind)
        raw_entries = bundle.get("entry", [])
        if not isinstance(raw_entries, list):
            raise StructureError("Bundle.entry must be an array", expression=("Bundle.entry",))
        limit = self._settings.max_bundle_entries
        if len(raw_entries) > limit:
            raise PayloadTooLarge(
                f"The Bundle has {len(raw_entries)} entries; at most {limit} are accepted "
                "in one request (CASEBRIDGE_MAX_BUNDLE_ENTRIES)"
            )
        self._check_searches(raw_entries)
        if kind == "batch":
            return "batch-response", self._batch(raw_entries, caller)
        return "transaction-response", self._transaction(raw_entries, caller)

    def _check_searches(self, raw_entries: list[Any]) -> None:
        """Bound the searches one Bundle may run (CASEBRIDGE_MAX_BUNDLE_SEARCHES)."""
        searches = 0
        for raw in raw_entries:
            request = raw.get("request") if isinstance(raw, dict) else None
            if not isinstance(request, dict) or request.get("method") not in ("GET", "HEAD"):
                continue
            url = request.get("url")
            path = url.partition("?")[0].strip("/") if isinstance(url, str) else ""
            if "?" in str(url) or "/" not in path:
                searches += 1
        limit = self._settings.max_bundle_searches
        if searches > limit:
            raise TooCostly(
                f"The Bundle holds {searches} searches; at most {limit} run in one request "
                "(CASEBRIDGE_MAX_BUNDLE_SEARCHES): send them in several Bundles"
            )

    # -- batch --------------------------------------------------------------------------
    def _batch(self, raw_entries: list[Any], caller: Caller) -> list[Outcome]:
        outcomes = []
        for index, raw in enumerate(raw_entries):
            try:
                entry = self._parse_entry(index, raw)
                _require_scopes(caller, entry)
                outcomes.append(self._single(entry, caller))
            except FHIRError as exc:
                outcomes.append(Outcome(exc.status, error=exc))
        return outcomes

    def _single(self, entry: Entry, caller: Caller) -> Outcome:
        """One batch entry as its own interaction (own transaction)."""
        resources = self._resources
        if entry.method in ("GET", "HEAD"):
            return self._read(entry, caller)
        if entry.method == "DELETE":
            if entry.query is not None:
                deleted = resources.conditional_delete(
                    caller=caller, resource_type=entry.resource_type, criteria=entry.query
                )
            else:
                assert entry.resource_id is not None
                deleted = resources.delete(
                    caller=caller,
                    resource_type=entry.resource_type,
                    resource_id=entry.resource_id,
                    if_match=entry.if_match,
                )
            return _deleted(deleted)
        with transaction(resources.engine, write=True, scope=resources.scope(caller)) as repo:
            result = self._write_one(repo, caller, entry, self._context(caller), standalone=True)
        return _written(result)

    # -- transaction --------------------------------------------------------------------
    def _transaction(self, raw_entries: list[Any], caller: Caller) -> list[Outcome]:
        entries = [_in_entry(i, self._parse_entry, i, raw) for i, raw in enumerate(raw_entries)]
        # Every entry is checked before anything is written: one denied entry fails it all.
        for entry in entries:
            _in_entry(entry.index, _require_scopes, caller, entry)
        _check_full_urls(entries)
        context = self._context(caller)
        writes = sorted(
            (e for e in entries if e.method not in ("GET", "HEAD")),
            key=lambda e: (_ORDER[e.method], e.index),
        )
        outcomes: dict[int, Outcome] = {}
        conditional_types = {
            e.resource_type for e in writes if e.query is not None or e.if_none_exist is not None
        }
        with transaction(
            self._resources.engine, write=True, scope=self._resources.scope(caller)
        ) as repo:
            # Type locks in one order, so two transactions never wait on each other in a cycle.
            for resource_type in sorted({e.resource_type for e in writes}):
                repo.lock_type(resource_type, exclusive=resource_type in conditional_types)
            # Deletions first, so that conditional creates and updates after them see the
            # database as the deletions left it (spec http.html#trules).
            deletes = [e for e in writes if e.method == "DELETE"]
            changes = [e for e in writes if e.method != "DELETE"]
            for entry in deletes:
                _in_entry(entry.index, self._settle_identity, repo, caller, entry, context)
            _check_overlap(deletes)
            for entry in deletes:
                outcomes[entry.index] = _in_entry(
                    entry.index, self._apply, repo, caller, entry, context
                )
            mapping: dict[str, str] = {}
            for entry in changes:
                pair = _in_entry(entry.index, self._settle_identity, repo, caller, entry, context)
                if pair is not None:
                    mapping[pair[0]] = pair[1]
            _check_overlap(writes)

            def resolve(reference: str) -> str:
                return self._resolve(repo, reference, context)

            for entry in changes:
                if entry.resource is not None:
                    _in_entry(entry.index, _rewrite_references, entry.resource, mapping, resolve)
            for entry in changes:
                outcomes[entry.index] = _in_entry(
                    entry.index, self._apply, repo, caller, entry, context
                )
            # Reads last, inside the transaction: a failing read fails it all.
            for entry in entries:
                if entry.method in ("GET", "HEAD"):
                    outcomes[entry.index] = _in_entry(entry.index, self._read, entry, caller, repo)
        return [outcomes[i] for i in range(len(entries))]

    def _settle_identity(
        self, repo: Repository, caller: Caller, entry: Entry, context: Context
    ) -> tuple[str, str] | None:
        """The id an entry will have, so references to its fullUrl can be rewritten."""
        resources = self._resources
        if entry.method == "POST":
            if entry.if_none_exist is not None:
                criteria = parse_criteria(entry.resource_type, entry.if_none_exist, context)
                existing = resources.find_one(repo, entry.resource_type, criteria, "ifNoneExist")
                if existing is not None:
                    entry.target_id, entry.skip_write = existing.id, True
            if entry.target_id is None:
                entry.target_id = resources.new_id()
        elif entry.method == "PUT" and entry.query is not None:
            criteria = parse_criteria(entry.resource_type, entry.query, context)
            body_id = entry.resource.get("id") if entry.resource else None
            entry.target_id = resources.conditional_target(
                repo,
                caller,
                entry.resource_type,
                criteria,
                body_id if isinstance(body_id, str) else None,
            )
        elif entry.method == "DELETE" and entry.query is not None:
            criteria = parse_criteria(entry.resource_type, entry.query, context)
            match = resources.find_one(repo, entry.resource_type, criteria, "Conditional delete")
            entry.target_id = match.id if match is not None else None
            entry.skip_write = match is None
        else:
            entry.target_id = entry.resource_id
        if entry.full_url and entry.target_id is not None:
            return entry.full_url, f"{entry.resource_type}/{entry.target_id}"
        return None

    def _resolve(self, repo: Repository, reference: str, context: Context) -> str:
        """A conditional reference "Patient?identifier=s|v": exactly one match (else 412)."""
        resource_type, _, query = reference.partition("?")
        if not is_resource_type(resource_type):
            raise InvalidRequest(f"Conditional reference {reference[:100]!r} names no type")
        criteria = parse_criteria(resource_type, _query_pairs(query, "reference"), context)
        matches = repo.find_ids(resource_type, criteria.conditions, limit=2)
        if len(matches) != 1:
            found = "no resource" if not matches else "more than one resource"
            raise PreconditionFailed(
                f"Conditional reference {reference[:200]} matches {found}; it must match one"
            )
        return f"{resource_type}/{matches[0]}"

    def _apply(self, repo: Repository, caller: Caller, entry: Entry, context: Context) -> Outcome:
        if entry.method == "DELETE":
            deleted = None
            if entry.target_id is not None and not entry.skip_write:
                deleted = self._resources.delete_in(
                    repo,
                    caller,
                    entry.resource_type,
                    entry.target_id,
                    entry.if_match,
                )
            return _deleted(deleted)
        return _written(self._write_one(repo, caller, entry, context, standalone=False))

    def _write_one(
        self,
        repo: Repository,
        caller: Caller,
        entry: Entry,
        context: Context,
        *,
        standalone: bool,
    ) -> WriteResult:
        """POST, PUT or PATCH of one entry inside an open write transaction."""
        resources = self._resources
        if standalone:
            exclusive = entry.query is not None or entry.if_none_exist is not None
            repo.lock_type(entry.resource_type, exclusive=exclusive)
            self._settle_identity(repo, caller, entry, context)
            if entry.resource is not None:
                # Batch entries are independent: only conditional references resolve.
                _rewrite_references(
                    entry.resource, {}, lambda ref: self._resolve(repo, ref, context)
                )
        if entry.method == "POST":
            assert entry.resource is not None and entry.target_id is not None
            if entry.skip_write:
                existing = repo.current(entry.resource_type, entry.target_id)
                assert existing is not None
                # Answered with the match's body: a release like a read.
                self._disclosures.record(caller, [existing], "read", repo=repo)
                return WriteResult(existing, created=False)
            return resources.create_in(
                repo, caller, entry.resource_type, entry.resource, resource_id=entry.target_id
            )
        if entry.method == "PUT":
            assert entry.resource is not None and entry.target_id is not None
            entry.resource["id"] = entry.target_id
            return resources.update_in(
                repo,
                caller,
                entry.resource_type,
                entry.target_id,
                entry.resource,
                entry.if_match,
            )
        assert entry.patch is not None and entry.target_id is not None
        return resources.patch_in(
            repo,
            caller,
            entry.resource_type,
            entry.target_id,
            entry.patch,
            entry.if_match,
        )

    def _read(self, entry: Entry, caller: Caller, repo: Repository | None = None) -> Outcome:
        """GET entries: read, vread or search; inside the transaction when repo is given."""
        if repo is not None:
            # A read after the transaction's writes sees their AuditEvents and Provenance.
            repo.flush_appends()
        if entry.query is not None or entry.resource_id is None:
            page = self._search.search(
                caller=caller,
                resource_type=entry.resource_type,
                params=entry.query or [],
                strict=False,
                repo=repo,
            )
            return Outcome(200, page=page, resource_type=entry.resource_type)
        if repo is None:
            with transaction(
                self._resources.engine, write=False, scope=self._resources.scope(caller)
            ) as reader:
                return self._read(entry, caller, reader)
        if entry.version_id is not None:
            version = self._resources.vread_in(
                repo, entry.resource_type, entry.resource_id, entry.version_id
            )
        else:
            version = self._resources.read_in(repo, entry.resource_type, entry.resource_id)
        # Inside a transaction the disclosure is logged in it; a batch read logs its own.
        self._disclosures.record(caller, [version], "read", repo=repo)
        if entry.if_none_match is not None and none_match(entry.if_none_match, version.version_id):
            return Outcome(304, version=version)
        return Outcome(200, version=version)

    # -- parsing ------------------------------------------------------------------------
    def _context(self, caller: Caller) -> Context:
        # The caller's scope: conditional criteria and references find only what it may see.
        return self._resources.context(caller)

    def _parse_entry(self, index: int, raw: Any) -> Entry:
        if not isinstance(raw, dict):
            raise StructureError("An entry must be an object")
        request = raw.get("request")
        if not isinstance(request, dict):
            raise InvalidRequest("The entry has no request (method and url)")
        method = request.get("method")
        url = request.get("url")
        if (
            not isinstance(method, str)
            or method not in _ORDER
            or not isinstance(url, str)
            or not url
        ):
            raise InvalidRequest(
                "request.method must be GET, HEAD, POST, PUT, PATCH or DELETE "
                "and request.url a relative URL"
            )
        entry = Entry(index, method, url, "")
        self._parse_url(entry, url)
        full_url = raw.get("fullUrl")
        if full_url is not None and not isinstance(full_url, str):
            raise StructureError("fullUrl must be a string")
        entry.full_url = full_url
        entry.if_match = _version_tag(request.get("ifMatch"), "ifMatch")
        if_none_match = request.get("ifNoneMatch")
        entry.if_none_match = if_none_match if isinstance(if_none_match, str) else None
        if_none_exist = request.get("ifNoneExist")
        if if_none_exist is not None:
            if method != "POST" or not isinstance(if_none_exist, str):
                raise InvalidRequest("ifNoneExist applies to POST entries and is a query string")
            entry.if_none_exist = _query_pairs(if_none_exist.rpartition("?")[2], "ifNoneExist")
        self._parse_body(entry, raw.get("resource"))
        return entry

    def _parse_url(self, entry: Entry, url: str) -> None:
        own = self._settings.base_url.rstrip("/") + "/"
        if url.startswith(own):
            url = url[len(own) :]
        parts = urlsplit(url)
        if parts.scheme or parts.netloc or parts.fragment:
            raise InvalidRequest(f"request.url {url[:100]!r} must be relative to this server")
        segments = [s for s in parts.path.split("/") if s]
        if not segments or not is_resource_type(segments[0]):
            raise NotFound(f"request.url {url[:100]!r} names no resource type this server serves")
        entry.resource_type = segments[0]
        if len(segments) >= 2:
            entry.resource_id = segments[1]
            if not is_valid_id(segments[1]):
                raise InvalidRequest(f"{segments[1][:70]!r} is not a valid id")
        if len(segments) == 4 and segments[2] == "_history" and entry.method in ("GET", "HEAD"):
            entry.version_id = segments[3]
        elif len(segments) > 2:
            raise InvalidRequest(f"request.url {url[:100]!r} is not an interaction of a bundle")
        if parts.query or url.endswith("?"):
            entry.query = _query_pairs(parts.query, "request.url")
        method = entry.method
        if method == "POST" and (entry.resource_id or entry.query):
            raise InvalidRequest("A POST entry's url is the resource type alone")
        if method in ("PUT", "PATCH") and entry.resource_id is None and entry.query is None:
            raise InvalidRequest(f"A {method} entry's url names a resource or has criteria")
        if method == "PATCH" and entry.query is not None:
            raise InvalidRequest("Conditional patch is not supported")
        if method == "DELETE" and entry.resource_id is None and not entry.query:
            raise InvalidRequest("A DELETE entry's url names a resource or has criteria")

    def _parse_body(self, entry: Entry, resource: Any) -> None:
        if entry.method in ("POST", "PUT"):
            if not isinstance(resource, dict):
                raise InvalidRequest(f"A {entry.method} entry carries a resource")
            resource_id = entry.resource_id if entry.method == "PUT" else None
            if entry.method == "PUT" and entry.query is not None:
                body_id = resource.get("id")
                resource_id = body_id if isinstance(body_id, str) else None
            elif entry.method == "POST":
                # A POST gets a server id; the id a client may send is ignored (spec
                # http.html#create), and only fullUrl links the entry to references.
                resource = {k: v for k, v in resource.items() if k != "id"}
            entry.resource = check_resource(
                resource, resource_type=entry.resource_type, resource_id=resource_id
            )
        elif entry.method == "PATCH":
            entry.patch = self._resources.parse_patch(_patch_operations(resource), parsed=True)


# --- helpers ---------------------------------------------------------------------------


def _require_scopes(caller: Caller, entry: Entry) -> None:
    """The SMART scopes an entry's interaction needs (app/security/scopes.py): the same as
    the single request; conditional forms and conditional references also search."""
    method = entry.method
    if method in ("GET", "HEAD"):
        needed = "s" if entry.query is not None or entry.resource_id is None else "r"
    elif method == "POST":
        needed = "c" if entry.if_none_exist is None else "cs"
    elif method in ("PUT", "PATCH"):
        needed = "u" if entry.query is None else "us"
    else:
        needed = "d" if entry.query is None else "ds"
    require(caller, entry.resource_type, needed)
    if entry.resource is not None:
        for holder in _reference_holders(entry.resource):
            reference = holder["reference"]
            if "?" in reference and not reference.startswith(("http://", "https://", "urn:", "#")):
                require(caller, reference.partition("?")[0], "s")


def _deleted(version: StoredVersion | None) -> Outcome:
    """A DELETE entry's outcome: 204, with the deletion's version tag when there was one."""
    return Outcome(204, version=version if version is not None and version.deleted else None)


def _written(result: WriteResult) -> Outcome:
    return Outcome(
        201 if result.created else 200,
        version=result.version,
        location=True,
        issues=result.issues,
    )


def _query_pairs(query: str, what: str) -> list[tuple[str, str]]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise InvalidRequest(f"{what} holds a malformed query string") from exc
    if any("\x00" in k or "\x00" in v for k, v in pairs):
        raise InvalidRequest(f"{what} holds a NUL character")
    return pairs


def _version_tag(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f'{what} must be a string like W/"3"')
    try:
        return parse_etag(value)
    except ValueError as exc:
        raise InvalidRequest(f'{what} {value[:40]!r} is not a version tag like W/"3"') from exc


def _patch_operations(resource: Any) -> Any:
    """A PATCH entry carries a Binary whose data is the JSON Patch document."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Binary":
        raise InvalidRequest("A PATCH entry carries a Binary holding a JSON Patch document")
    if resource.get("contentType") not in ("application/json-patch+json", "application/json"):
        raise InvalidRequest("The PATCH Binary's contentType must be application/json-patch+json")
    data = resource.get("data")
    try:
        raw = base64.b64decode(data if isinstance(data, str) else "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("The PATCH Binary's data is not base64") from exc
    return parse_json(raw, max_depth=64)


def _in_entry(index: int, action: Callable[..., _T], *args: Any) -> _T:
    """Run action(*args); a client error names the entry it came from."""
    try:
        return action(*args)
    except FHIRError as exc:
        raise _for_entry(index, exc) from exc


def _for_entry(index: int, exc: FHIRError) -> FHIRError:
    where = f"Bundle.entry[{index}]"
    issues = [
        Issue(i.code, f"{where}: {i.diagnostics}", i.severity, (where, *i.expression))
        for i in exc.issues
    ]
    error = type(exc)(f"{where}: {exc.diagnostics}", (where, *exc.expression), issues)
    error.headers = dict(exc.headers)
    return error


def _check_full_urls(entries: list[Entry]) -> None:
    seen: dict[str, int] = {}
    for entry in entries:
        if entry.full_url is None or entry.method in ("GET", "HEAD"):
            continue
        if entry.full_url in seen:
            raise _for_entry(
                entry.index,
                InvalidRequest(
                    f"fullUrl {entry.full_url[:100]} is also the fullUrl of entry "
                    f"{seen[entry.full_url]}"
                ),
            )
        seen[entry.full_url] = entry.index


def _check_overlap(entries: list[Entry]) -> None:
    """Two writes may not touch the same resource (spec http.html#trules)."""
    seen: dict[tuple[str, str], int] = {}
    for entry in entries:
        if entry.target_id is None or (entry.method == "POST" and entry.skip_write):
            continue
        key = (entry.resource_type, entry.target_id)
        if key in seen:
            raise _for_entry(
                entry.index,
                InvalidRequest(
                    f"{key[0]}/{key[1]} is also written by entry {seen[key]}; a transaction "
                    "may change each resource once"
                ),
            )
        seen[key] = entry.index


def _rewrite_references(
    resource: dict[str, Any], mapping: dict[str, str], resolve: Callable[[str], str]
) -> None:
    """Replace Reference.reference values that name an entry's fullUrl, or are conditional
    references (Type?criteria), anywhere in the resource (nested, contained, extensions)."""
    for holder in _reference_holders(resource):
        value = holder["reference"]
        target = mapping.get(value)
        if target is not None:
            holder["reference"] = target
        elif "?" in value and not value.startswith(("http://", "https://", "urn:", "#")):
            holder["reference"] = resolve(value)
        elif value.startswith("urn:uuid:"):
            raise InvalidRequest(f"Reference {value[:80]} names no entry of this transaction")


def _reference_holders(value: Any) -> Iterator[dict[str, Any]]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("reference"), str):
                yield item
            stack.extend(v for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, (dict, list)))


def response_entry(outcome: Outcome, base_url: str) -> dict[str, Any]:
    """The response part of one Bundle.entry (spec bundle.html#transaction-response)."""
    if outcome.error is not None:
        return {
            "response": {
                "status": f"{outcome.error.status}",
                "outcome": outcome.error.outcome(),
            }
        }
    response: dict[str, Any] = {"status": _STATUS_TEXT.get(outcome.status, str(outcome.status))}
    version = outcome.version
    if version is not None:
        response["etag"] = etag(version.version_id)
        response["lastModified"] = format_instant(version.last_updated)
        if outcome.location:
            response["location"] = (
                f"{version.resource_type}/{version.id}/_history/{version.version_id}"
            )
    if outcome.issues:
        # Hints and warnings produced processing the entry (spec bundle.html, entry.response).
        response["outcome"] = operation_outcome(list(outcome.issues))
    entry: dict[str, Any] = {"response": response}
    if version is not None:
        entry["fullUrl"] = f"{base_url}/{version.resource_type}/{version.id}"
    return entry


__all__ = ["BundleService", "Outcome", "response_entry"]
