"""A plain referral as the FHIR transaction Bundle the /referrals endpoints accept."""

from __future__ import annotations

from mappings.casework import referral_bundle, service_request_to_referral

__all__ = ["referral_bundle", "service_request_to_referral"]
