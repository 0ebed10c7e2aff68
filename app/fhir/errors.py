"""The one family of errors the service raises; each renders as an OperationOutcome.

FHIR spec: OperationOutcome (https://hl7.org/fhir/R4B/operationoutcome.html) and the
HTTP status codes of the RESTful API (https://hl7.org/fhir/R4B/http.html#summary).
The exception handler in app/api/errors.py is the only place these become HTTP responses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

Severity = Literal["fatal", "error", "warning", "information"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One OperationOutcome.issue: severity, an IssueType code, text and where it applies."""

    code: str
    diagnostics: str
    severity: Severity = "error"
    expression: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The issue as FHIR JSON."""
        out: dict[str, Any] = {"severity": self.severity, "code": self.code}
        out["diagnostics"] = self.diagnostics
        if self.expression:
            out["expression"] = list(self.expression)
        return out


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """An OperationOutcome resource holding the given issues."""
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


@dataclass
class FHIRError(Exception):
    """Base of every error a client can be told about; subclasses fix status and issue code."""

    diagnostics: str
    expression: tuple[str, ...] = ()
    issues: list[Issue] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    status: ClassVar[int] = 500
    code: ClassVar[str] = "exception"

    def __post_init__(self) -> None:
        super().__init__(self.diagnostics)
        if not self.issues:
            self.issues = [Issue(self.code, self.diagnostics, "error", self.expression)]

    def outcome(self) -> dict[str, Any]:
        """This error as an OperationOutcome."""
        return operation_outcome(self.issues)


class InvalidRequest(FHIRError):
    """400: the request is malformed (syntax, parameters, headers)."""

    status = 400
    code = "invalid"


class StructureError(InvalidRequest):
    """400: the body is not well-formed JSON as FHIR requires."""

    code = "structure"


class ResourceInvalid(FHIRError):
    """422: the resource is well-formed but breaks FHIR rules (spec http.html#update)."""

    status = 422
    code = "processing"


class Unauthorized(FHIRError):
    """401: no valid credentials; the response names how to authenticate."""

    status = 401
    code = "login"


class Forbidden(FHIRError):
    """403: the caller is known but may not do this (scope or agency rule)."""

    status = 403
    code = "forbidden"


class NotFound(FHIRError):
    """404: no such resource, type or endpoint."""

    status = 404
    code = "not-found"


class Gone(FHIRError):
    """410: the resource existed and was deleted (spec http.html#read)."""

    status = 410
    code = "deleted"


class MethodNotAllowed(FHIRError):
    """405: the interaction is not defined for this URL."""

    status = 405
    code = "not-supported"


class NotAcceptable(FHIRError):
    """406: the requested representation is not one this server produces."""

    status = 406
    code = "not-supported"


class UnsupportedMediaType(FHIRError):
    """415: the body's content type is not one this server reads."""

    status = 415
    code = "not-supported"


class Conflict(FHIRError):
    """409: the change conflicts with the resource's current state."""

    status = 409
    code = "conflict"


class PreconditionFailed(FHIRError):
    """412: If-Match or a conditional criterion did not hold (spec http.html#concurrency)."""

    status = 412
    code = "conflict"


class PreconditionRequired(FHIRError):
    """428: the server requires this write to be conditional (If-Match; RFC 6585 section 3,
    spec http.html#concurrency)."""

    status = 428
    code = "required"


class PayloadTooLarge(FHIRError):
    """413: the body exceeds the configured limit; refused before parsing."""

    status = 413
    code = "too-costly"


class TooCostly(FHIRError):
    """400 too-costly: the request asks for more work than the server allows at once."""

    status = 400
    code = "too-costly"


class Transient(FHIRError):
    """503: the database is unreachable or busy; the client may retry."""

    status = 503
    code = "transient"


class InternalError(FHIRError):
    """500: a fault of the server, never of the client."""

    status = 500
    code = "exception"


class OAuthError(FHIRError):
    """An OAuth 2.0 error of the token or introspection endpoint (RFC 6749 section 5.2).

    These endpoints speak OAuth, not FHIR: the one error handler renders this family as
    {"error", "error_description"} JSON rather than an OperationOutcome.
    """

    status = 400
    code = "security"
    error: ClassVar[str] = "invalid_request"

    def oauth_body(self) -> dict[str, str]:
        """The RFC 6749 section 5.2 error body."""
        return {"error": self.error, "error_description": self.diagnostics}


class OAuthInvalidRequest(OAuthError):
    """400 invalid_request: a parameter is missing, repeated or malformed."""


class InvalidClient(OAuthError):
    """400 invalid_client: client authentication (the signed client assertion) failed."""

    error = "invalid_client"


class InvalidScope(OAuthError):
    """400 invalid_scope: the requested scope is malformed or grants nothing."""

    error = "invalid_scope"


class UnsupportedGrantType(OAuthError):
    """400 unsupported_grant_type: only client_credentials is offered."""

    error = "unsupported_grant_type"


class InvalidToken(OAuthError):
    """401 invalid_token: the bearer token presented to an OAuth endpoint is not valid
    (RFC 6750 section 3.1; RFC 7662 section 2.3)."""

    status = 401
    error = "invalid_token"


def invalid_plain(exc: Any, model: str) -> InvalidRequest:
    """A pydantic ValidationError of a plain case-management model (schemas/) as a 400
    naming each field at fault."""
    issues = []
    for error in exc.errors(include_url=False)[:50]:
        where = ".".join(str(p) for p in error["loc"]) or model
        issues.append(Issue("invalid", f"{where}: {error['msg']}", "error", (where,)))
    return InvalidRequest(issues[0].diagnostics if issues else model, issues=issues)
