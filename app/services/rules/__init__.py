"""The write rules (hooks) of the write pipeline: each checks or amends a write before it is
stored and returns follow-up writes after (app/services/writes.py, ``WriteRule``).

- ``access``: owners, labels, referral shares and consent grants (AccessHook);
- ``subscriptions``: channel and criteria checks, outbox rows (SubscriptionHook);
- ``assessments``: instrument answers, scores and risk Flags (AssessmentScoring);
- ``referrals``: the referral state machine (ReferralRules);
- ``cases``: the case-management process: stages and closure (CaseProcess);
- ``audit``: the AuditEvent and Provenance of every write (WriteRecorder).
"""
