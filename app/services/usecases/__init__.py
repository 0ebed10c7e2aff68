"""What the routes call, one service per area: resources (CRUD, conditional, patch),
search, history, bundle (batch and transaction), everything ($everything), cases (plain
case management), referrals, reports, conformance (CapabilityStatement), health,
subscriptions ($status), audit (the audit log, read-only)."""
