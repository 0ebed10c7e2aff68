"""The shapes data may take: plain case-management models, and FHIR conformance data (fhir/).

schemas/fhir/ holds generated JSON: resource types, required bindings, JSON types and search
parameters of FHIR R4B (scripts/gen_*.py regenerate them from hl7.fhir.r4b.core@4.3.0).
"""
