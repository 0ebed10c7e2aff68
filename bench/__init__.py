"""casebridge load benchmark: `python -m bench` (or `make bench`).

Starts the real server (uvicorn, several workers) as a subprocess on 127.0.0.1 against
SQLite and PostgreSQL, drives it with wrk (or a Python asyncio + httpx fallback) running
in another process, and prints throughput and latency of CarePlan create, read and update
beside the project's performance targets.
"""
