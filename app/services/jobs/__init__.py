"""Work done off the request path: audit (the recorder that turns accesses into
AuditEvents in the background), export (bulk data export jobs), bulk (the NDJSON loader),
importer (``casebridge import``), reindex (``casebridge search reindex``). Notification
delivery lives in app/notify."""
