"""The use cases and the one write pipeline (docs/architecture.md, "Inside the services").

- ``writes``: the write pipeline every change runs; ``uow``: the transaction;
  ``params``: paging; ``disclosure``: the record of releases; ``request_audit``: the
  request being served, as the audit sees it.
- ``rules/``: the write rules the pipeline runs, in the order ``container`` declares.
- ``usecases/``: what the routes call.
- ``jobs/``: work done off the request path.
- ``auth/``: API clients, tokens and keys.
- ``container``: builds all of it once per app.
"""
