"""Pure functions between the plain case-management models (schemas/) and FHIR resources.

Filled by the case-management domain work; see docs/architecture.md.
"""
