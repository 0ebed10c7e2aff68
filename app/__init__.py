"""casebridge: a FHIR R4 (R4B models) service for case management and referral exchange."""

__version__ = "0.1.0"
