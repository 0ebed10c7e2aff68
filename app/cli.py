"""The casebridge command line: serve, database migrations, bulk load and reindex."""

from __future__ import annotations

import copy
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.config import get_settings
from app.security.caller import is_loopback
from app.storage.db import create_db_engine, current_revision, head_revision, is_migrated, upgrade

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from app.services.auth.clients import ClientRegistry

cli = typer.Typer(
    help="casebridge: FHIR R4 case management and referral exchange.", no_args_is_help=True
)
db_cli = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
search_cli = typer.Typer(help="Search index maintenance.", no_args_is_help=True)
cli.add_typer(search_cli, name="search")
audit_cli = typer.Typer(help="The audit log.", no_args_is_help=True)
cli.add_typer(audit_cli, name="audit")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    migrate: Annotated[bool, typer.Option(help="Apply pending migrations first.")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Start the HTTP server (FHIR base at /fhir)."""

    settings = get_settings()
    if settings.auth == "off":
        if not is_loopback(host):
            typer.echo(
                f"CASEBRIDGE_AUTH=off serves records without authentication and is refused on "
                f"{host!r}: bind a loopback address (127.0.0.1, ::1) or set CASEBRIDGE_AUTH=smart.",
                err=True,
            )
            raise typer.Exit(code=2)
        typer.secho(
            "WARNING: authentication is OFF (CASEBRIDGE_AUTH=off): local development only. "
            "Requests act for the agency in the X-Casebridge-Agency header.",
            err=True,
            fg=typer.colors.RED,
            bold=True,
        )
    engine = create_db_engine(settings.effective_database_url)
    try:
        if migrate:
            upgrade(engine)
        elif not is_migrated(engine):
            typer.echo(
                f"The database {engine.url.render_as_string(hide_password=True)} is not migrated "
                f"(at {current_revision(engine)}, code expects {head_revision()}).\n"
                "Run `casebridge db upgrade`, or start with `casebridge serve --migrate`.",
                err=True,
            )
            raise typer.Exit(code=2)
    finally:
        engine.dispose()
    shared_metrics = None
    if settings.metrics and workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker process writes its counts here and a scrape of any of them adds them
        # up (prometheus_client multiprocess mode; the workers inherit the variable).
        shared_metrics = tempfile.mkdtemp(prefix="casebridge-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared_metrics
    try:
        _serve(host, port, workers, log_level)
    finally:
        if shared_metrics is not None:
            shutil.rmtree(shared_metrics, ignore_errors=True)


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, plus the request log: each line already JSON, on stdout."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["casebridge_line"] = {"format": "%(message)s"}
    config["handlers"]["casebridge_request"] = {
        "class": "logging.StreamHandler",
        "formatter": "casebridge_line",
        "stream": "ext://sys.stdout",
    }
    config["loggers"]["casebridge.request"] = {
        "handlers": ["casebridge_request"],
        "level": "INFO",
        "propagate": False,
    }
    return config


def _serve(host: str, port: int, workers: int, log_level: str) -> None:
    import uvicorn

    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        loop="uvloop",
        http="httptools",
        proxy_headers=True,
        # The JSON request log (CASEBRIDGE_REQUEST_LOG) replaces uvicorn's access log,
        # whose lines hold paths and query strings: ids, names.
        access_log=os.environ.get("CASEBRIDGE_ACCESS_LOG", "0") == "1",
        log_config=_log_config(),
    )


@db_cli.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations up to a revision (default: the newest)."""
    settings = get_settings()
    engine = create_db_engine(settings.effective_database_url)
    try:
        upgrade(engine, revision)
        typer.echo(f"Database at {current_revision(engine)}")
    finally:
        engine.dispose()


@db_cli.command("current")
def db_current() -> None:
    """Print the database's migration revision and the code's."""
    settings = get_settings()
    engine = create_db_engine(settings.effective_database_url)
    try:
        typer.echo(f"database: {current_revision(engine)}\ncode:     {head_revision()}")
    finally:
        engine.dispose()


@cli.command("backup")
def backup_command(
    path: Annotated[Path, typer.Argument(help="The backup file to write (replaced if it exists).")],
) -> None:
    """Back up the SQLite database while the server runs (consistent as of one instant)."""
    from app.storage.backup import BackupError, backup, sqlite_path

    try:
        summary = backup(sqlite_path(get_settings().effective_database_url), path)
    except BackupError as exc:
        typer.echo(f"No backup made: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    typer.echo(
        f"Backed up {summary.resources:,} resources ({summary.bytes / 2**20:,.1f} MiB, "
        f"schema {summary.revision}) to {summary.path} in {summary.seconds:.1f} s"
    )


@cli.command("restore")
def restore_command(
    path: Annotated[Path, typer.Argument(help="A backup made by `casebridge backup`.")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Replace the database without asking.")
    ] = False,
) -> None:
    """Replace the SQLite database with a backup. Stop the server (and workers) first."""
    from app.storage.backup import BackupError, restore, sqlite_path

    try:
        target = sqlite_path(get_settings().effective_database_url)
        if target.exists() and not yes:
            typer.confirm(
                f"Replace everything in {target} with {path}? Stop every casebridge process "
                "using it first",
                abort=True,
            )
        summary = restore(path, target)
    except BackupError as exc:
        typer.echo(f"Nothing restored: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    typer.echo(
        f"Restored {summary.resources:,} resources (schema {summary.revision}) into "
        f"{summary.path}; run `casebridge db upgrade` if the code is newer than the backup"
    )


@audit_cli.command("archive")
def audit_archive(
    older_than_days: Annotated[
        int, typer.Option(min=1, help="Move AuditEvents recorded more than this many days ago.")
    ],
    to: Annotated[
        Path | None,
        typer.Option(help="Archive directory (default: audit-archive under the data directory)."),
    ] = None,
    no_archive: Annotated[
        bool,
        typer.Option("--no-archive", help="Delete them without archiving (where policy allows)."),
    ] = False,
) -> None:
    """Move old AuditEvents to compressed NDJSON archives, one file a month (README,
    Retention); safe to run while the server serves, and again after a crash."""
    from datetime import timedelta

    from app.clock import Clock
    from app.services.jobs.retention import archive_audit

    settings = get_settings()
    directory = None if no_archive else (to or settings.data_dir / "audit-archive")
    before = Clock().now() - timedelta(days=older_than_days)
    engine = create_db_engine(settings.effective_database_url)
    try:
        _migrated_or_exit(engine)
        summary = archive_audit(engine, before=before, directory=directory)
    finally:
        engine.dispose()
    where = f" into {directory}" if directory is not None else " (not archived)"
    typer.echo(
        f"{summary.deleted:,} AuditEvents recorded before {before:%Y-%m-%d %H:%M} UTC moved"
        f"{where}; {len(summary.files)} archive file(s) written"
    )


def _migrated_or_exit(engine: Engine) -> None:
    if not is_migrated(engine):
        typer.echo(
            f"The database {engine.url.render_as_string(hide_password=True)} is not migrated "
            f"(at {current_revision(engine)}, code expects {head_revision()}).\n"
            "Run `casebridge db upgrade` first.",
            err=True,
        )
        raise typer.Exit(code=2)


# Options `load` and `import` share.
BatchOption = Annotated[
    int | None,
    typer.Option(
        min=1, help="Resources per transaction (default: 1,000 on SQLite, 4,000 on PostgreSQL)."
    ),
]
AgencyOption = Annotated[
    str | None,
    typer.Option(
        help="The agency the records belong to (Organization/{id}); without it they are "
        "the operator's, which no agency sees without a referral and a consent."
    ),
]
WorkersOption = Annotated[
    int | None, typer.Option(min=0, help="Validating processes (default: one per CPU).")
]


@cli.command()
def load(
    file: Annotated[
        Path,
        typer.Argument(help="NDJSON file: one resource per line.", exists=True, dir_okay=False),
    ],
    batch: BatchOption = None,
    agency: AgencyOption = None,
    workers: WorkersOption = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Write every failed line as NDJSON {line, outcome} to this file."),
    ] = None,
    analyze: Annotated[
        bool, typer.Option(help="Refresh the query planner's statistics afterwards.")
    ] = True,
) -> None:
    """Load NDJSON resources as new resources (ids kept); exit 1 if any line failed."""
    import orjson
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from app.services.jobs import bulk
    from app.services.jobs.bulk import LoadAborted, LoadProgress, bulk_engine, load_ndjson

    settings = get_settings()
    engine = bulk_engine(settings)
    console = Console(stderr=True)
    try:
        _migrated_or_exit(engine)
        columns = (
            TextColumn("[bold]loading"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[loaded]:>10,} loaded  {task.fields[failed]:,} failed"),
            TextColumn("{task.fields[rate]:>7,.0f} resources/s"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(
                "load", total=file.stat().st_size, loaded=0, failed=0, rate=0.0
            )
            started = progress.get_time()

            def show(step: LoadProgress) -> None:
                elapsed = max(progress.get_time() - started, 1e-6)
                progress.update(
                    task,
                    completed=step.bytes_read,
                    loaded=step.loaded,
                    failed=step.failed,
                    rate=step.loaded / elapsed,
                )

            try:
                summary = load_ndjson(
                    file,
                    engine=engine,
                    settings=settings,
                    workers=workers,
                    batch_size=batch,
                    on_progress=show,
                    agency=_agency_or_exit(agency),
                )
            except LoadAborted as exc:
                summary = exc.summary
                console.print(f"[red]Load stopped: {exc}")
                console.print(
                    f"{summary.loaded:,} resources were stored before that; loading the file "
                    "again reports them as existing and stores the rest."
                )
                raise typer.Exit(code=1) from exc
        if analyze and summary.loaded:
            bulk.analyze(engine)
    finally:
        engine.dispose()
    for failure in summary.failures[:20]:
        console.print(
            f"line {failure.line}: {failure.message}", markup=False, highlight=False, soft_wrap=True
        )
    if summary.failed > 20:
        console.print(f"... and {summary.failed - 20:,} more failed lines")
    if report is not None:
        with report.open("wb") as out:
            for failure in summary.failures:
                record = {"line": failure.line, "outcome": failure.outcome()}
                out.write(orjson.dumps(record) + b"\n")
    typer.echo(
        f"Loaded {summary.loaded:,} resources in {summary.seconds:.1f} s "
        f"({summary.rate:,.0f}/s); {summary.failed:,} lines failed"
    )
    if summary.failed:
        raise typer.Exit(code=1)


@cli.command("import")
def import_files(
    paths: Annotated[
        list[Path],
        typer.Argument(help="NDJSON or Bundle JSON files, or directories of them.", exists=True),
    ],
    batch: BatchOption = None,
    agency: AgencyOption = None,
    workers: WorkersOption = None,
) -> None:
    """Import resources (ids kept; existing ids skipped, so a re-run stores nothing twice);
    errors name file:line; exit 1 if any resource failed."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from app.services.jobs import bulk
    from app.services.jobs.bulk import LoadProgress, bulk_engine
    from app.services.jobs.importer import import_paths

    settings = get_settings()
    engine = bulk_engine(settings)
    console = Console(stderr=True)
    try:
        _migrated_or_exit(engine)
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[loaded]:>10,} loaded  {task.fields[failed]:,} failed"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            current: list[Any] = []

            def next_file(path: Path, size: int) -> None:
                current[:] = [progress.add_task(path.name, total=size, loaded=0, failed=0)]

            def show(step: LoadProgress) -> None:
                progress.update(
                    current[0], completed=step.bytes_read, loaded=step.loaded, failed=step.failed
                )

            results = import_paths(
                paths,
                engine=engine,
                settings=settings,
                workers=workers,
                batch_size=batch,
                agency=_agency_or_exit(agency),
                on_file=next_file,
                on_progress=show,
            )
        if any(r.summary.loaded for r in results):
            bulk.analyze(engine)
    finally:
        engine.dispose()
    shown = 0
    for result in results:
        for failure in result.summary.failures:
            if shown < 50:
                console.print(
                    f"{result.where(failure)}: {failure.message}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
            shown += 1
    loaded = sum(r.summary.loaded for r in results)
    skipped = sum(r.summary.skipped for r in results)
    failed = sum(r.summary.failed for r in results)
    seconds = sum(r.summary.seconds for r in results)
    if shown > 50:
        console.print(f"... and {shown - 50:,} more failures")
    typer.echo(
        f"Imported {loaded:,} resources from {len(results)} files in {seconds:.1f} s; "
        f"{skipped:,} already present (skipped); {failed:,} failed"
    )
    if failed:
        raise typer.Exit(code=1)


@search_cli.command("reindex")
def search_reindex(
    resource_type: Annotated[
        str | None, typer.Option("--type", help="Only this resource type (default: all).")
    ] = None,
    batch: Annotated[int, typer.Option(min=1, help="Resources per transaction.")] = 200,
) -> None:
    """Rebuild the search-index rows of all live resources (after a registry change)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from app.fhir.registry import is_resource_type
    from app.services.jobs.bulk import bulk_engine
    from app.services.jobs.reindex import ReindexProgress, reindex

    settings = get_settings()
    engine = bulk_engine(settings)
    console = Console(stderr=True)
    try:
        _migrated_or_exit(engine)
        if resource_type is not None and not is_resource_type(resource_type):
            console.print(f"[red]Unknown resource type {resource_type!r}")
            raise typer.Exit(code=2)
        columns = (
            TextColumn("[bold]reindexing {task.fields[kind]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>7,.0f} resources/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("reindex", total=None, kind="", rate=0.0)
            started = progress.get_time()

            def show(step: ReindexProgress) -> None:
                elapsed = max(progress.get_time() - started, 1e-6)
                progress.update(
                    task,
                    completed=step.done,
                    total=step.total,
                    kind=step.resource_type,
                    rate=step.done / elapsed,
                )

            summary = reindex(
                engine, settings, resource_type=resource_type, batch_size=batch, on_progress=show
            )
    finally:
        engine.dispose()
    for problem in summary.problems[:20]:
        console.print(
            f"{problem.resource_type}/{problem.resource_id}: {problem.message}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    typer.echo(
        f"Reindexed {summary.resources:,} resources of {len(summary.per_type)} types in "
        f"{summary.seconds:.1f} s ({summary.rate:,.0f}/s); {len(summary.problems)} skipped"
    )
    if summary.problems:
        raise typer.Exit(code=1)


shares_cli = typer.Typer(help="Referral shares and consent grants.", no_args_is_help=True)
cli.add_typer(shares_cli, name="shares")


@shares_cli.command("rebuild")
def shares_rebuild() -> None:
    """Recompute what every referral shares and every consent releases, under the current
    rules (docs/threat-model.md); run once after an upgrade that changed them."""
    from app.services.jobs.bulk import bulk_engine
    from app.services.rules.access import rebuild_all_shares

    settings = get_settings()
    engine = bulk_engine(settings)
    try:
        _migrated_or_exit(engine)
        done = rebuild_all_shares(engine, own_base=settings.base_url)
    finally:
        engine.dispose()
    typer.echo(f"Recomputed the shares of {done:,} Tasks and Consents")


clients_cli = typer.Typer(
    help="API clients (SMART Backend Services): register, list, disable.", no_args_is_help=True
)
cli.add_typer(clients_cli, name="clients")


def _client_registry() -> tuple[Engine, ClientRegistry]:
    from app.clock import Clock
    from app.services.auth.clients import ClientRegistry

    engine = create_db_engine(get_settings().effective_database_url)
    try:
        _migrated_or_exit(engine)
    except typer.Exit:
        engine.dispose()
        raise
    return engine, ClientRegistry(engine=engine, clock=Clock())


@clients_cli.command("add")
def clients_add(
    org: Annotated[str, typer.Option("--org", help="The agency: Organization/{id}.")],
    name: Annotated[str, typer.Option("--name", help="A name people will recognise.")],
    scope: Annotated[
        str,
        typer.Option(
            "--scope", help='Scopes it may be granted, e.g. "system/CarePlan.cruds system/*.rs".'
        ),
    ],
    jwks_file: Annotated[
        Path | None,
        typer.Option("--jwks-file", help="Its public JWK Set (JSON).", exists=True, dir_okay=False),
    ] = None,
    jwks_url: Annotated[
        str | None, typer.Option("--jwks-url", help="Or the URL it publishes its JWK Set at.")
    ] = None,
) -> None:
    """Register a client; prints its client_id alone on stdout (for scripts)."""
    import orjson

    from app.fhir.errors import FHIRError

    if (jwks_file is None) == (jwks_url is None):
        typer.echo("Give exactly one of --jwks-file and --jwks-url.", err=True)
        raise typer.Exit(code=2)
    jwks: Any = None
    if jwks_file is not None:
        try:
            jwks = orjson.loads(jwks_file.read_bytes())
        except orjson.JSONDecodeError as exc:
            typer.echo(f"{jwks_file} is not JSON: {exc}", err=True)
            raise typer.Exit(code=2) from exc
    engine, registry = _client_registry()
    try:
        client = registry.register(
            agency=org, name=name, scopes_text=scope, jwks=jwks, jwks_url=jwks_url
        )
        if not registry.agency_exists(client.agency):
            typer.echo(f"Note: no Organization resource {client.agency} is stored yet.", err=True)
    except FHIRError as exc:
        typer.echo(f"Not registered: {exc.diagnostics}", err=True)
        raise typer.Exit(code=2) from exc
    finally:
        engine.dispose()
    typer.echo(client.client_id)


@clients_cli.command("list")
def clients_list() -> None:
    """Every registered client: id, name, agency, keys, scopes, status."""
    from rich.console import Console
    from rich.table import Table

    engine, registry = _client_registry()
    try:
        clients = registry.all()
    finally:
        engine.dispose()
    table = Table(title=f"{len(clients)} API clients")
    for column in ("client_id", "name", "agency", "keys", "scopes", "status", "created"):
        table.add_column(column, overflow="fold")
    for client in clients:
        if client.jwks is not None:
            kids = ", ".join(str(k.get("kid")) for k in client.jwks["keys"])
            keys = f"{len(client.jwks['keys'])} inline ({kids})"
        else:
            keys = str(client.jwks_url)
        table.add_row(
            client.client_id,
            client.name,
            client.agency,
            keys,
            " ".join(client.scopes),
            "[red]disabled" if client.disabled else "[green]active",
            client.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    Console(width=200).print(table)


@clients_cli.command("disable")
def clients_disable(
    client_id: Annotated[str, typer.Argument(help="The client_id to disable.")],
) -> None:
    """Disable a client: no new tokens at once; its current tokens stop working within
    CASEBRIDGE_AUTH_CLIENT_CACHE_S seconds."""
    from app.fhir.errors import FHIRError

    engine, registry = _client_registry()
    try:
        client = registry.set_disabled(client_id, True)
    except FHIRError as exc:
        typer.echo(exc.diagnostics, err=True)
        raise typer.Exit(code=1) from exc
    finally:
        engine.dispose()
    typer.echo(f"Disabled {client.client_id} ({client.name}, {client.agency})")


@cli.command()
def worker() -> None:
    """Deliver Subscription notifications from the outbox until stopped (SIGTERM/Ctrl-C).

    Run it beside servers started with CASEBRIDGE_NOTIFY_WORKER=false; any number of workers
    and servers may deliver from one database (rows are leased, never sent twice at once).
    """
    import signal

    from app.clock import Clock
    from app.notify import DeliveryWorker
    from app.services.container import build_services

    settings = get_settings()
    engine = create_db_engine(
        settings.effective_database_url,
        pool_size=settings.db_pool_size,
        busy_timeout_ms=settings.db_busy_timeout_ms,
        sqlite_mmap_mb=settings.sqlite_mmap_mb,
        sqlite_synchronous=settings.sqlite_synchronous,
        sqlite_read_only_guard=settings.sqlite_read_only_guard,
    )
    try:
        _migrated_or_exit(engine)
        services = build_services(settings=settings, engine=engine, clock=Clock())
        delivery = DeliveryWorker(services)

        def _stop(_signum: int, _frame: object) -> None:
            delivery.stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        services.audit.start()  # each delivery attempt is audited
        delivery.start()
        archive = None
        if settings.audit_archive_days:
            from app.services.jobs.retention import ArchiveSchedule

            archive = ArchiveSchedule(
                engine,
                days=settings.audit_archive_days,
                directory=settings.audit_archive_dir or settings.data_dir / "audit-archive",
                interval_s=settings.audit_archive_interval_s,
            )
            archive.start()
        typer.echo("casebridge worker: delivering notifications", err=True)
        try:
            delivery.wait()
        finally:
            if archive is not None:
                archive.stop()
            services.audit.shutdown()
    finally:
        engine.dispose()


users_cli = typer.Typer(
    help="People who sign in to the web app: add, list, password, disable, enable, unlock.",
    no_args_is_help=True,
)
cli.add_typer(users_cli, name="users")


def _people() -> tuple[Engine, Any]:
    from app.clock import Clock
    from app.services.auth.people import PeopleService

    settings = get_settings()
    engine = create_db_engine(settings.effective_database_url)
    try:
        _migrated_or_exit(engine)
    except typer.Exit:
        engine.dispose()
        raise
    return engine, PeopleService(engine=engine, clock=Clock(), settings=settings)


def _read_password() -> str:
    """The password from stdin: typed twice at a terminal (not echoed), else the first
    line of what is piped in. Never a command-line argument (process lists show those)."""
    import getpass

    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            typer.echo("The two passwords differ.", err=True)
            raise typer.Exit(code=2)
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _people_call(action: Any) -> Any:
    from app.fhir.errors import FHIRError

    engine, people = _people()
    try:
        return action(people)
    except FHIRError as exc:
        typer.echo(exc.diagnostics, err=True)
        raise typer.Exit(code=2) from exc
    finally:
        engine.dispose()


@users_cli.command("add")
def users_add(
    org: Annotated[str, typer.Option("--org", help="Their agency: Organization/{id}.")],
    practitioner: Annotated[
        str, typer.Option("--practitioner", help="Who they are: Practitioner/{id}.")
    ],
    email: Annotated[str, typer.Option("--email", help="The address they sign in with.")],
    name: Annotated[str | None, typer.Option("--name", help="Their name, as shown.")] = None,
    org_name: Annotated[
        str | None,
        typer.Option("--org-name", help="The agency's name, when its Organization is new."),
    ] = None,
) -> None:
    """Add a person; the password is read from stdin (at least 12 characters). Their
    agency's Organization and their Practitioner are written to the directory when not
    there yet (so a new server is ready to use)."""
    password = _read_password()
    user = _people_call(
        lambda people: people.add_user(
            email=email, agency=org, practitioner=practitioner, password=password, name=name
        )
    )
    _directory_entries(user.agency, org_name, user.practitioner, user.name)
    typer.echo(f"{user.email} can sign in at {get_settings().base_url.rsplit('/fhir', 1)[0]}/app/")


def _directory_entries(
    agency: str, agency_name: str | None, practitioner: str, name: str | None
) -> None:
    """The Organization and Practitioner a new account names, written as the operator when
    the directory lacks them (an existing one is left as it is)."""
    import orjson

    from app.clock import Clock
    from app.fhir.errors import FHIRError
    from app.security.caller import OPERATOR
    from app.services.container import build_services

    settings = get_settings()
    engine = create_db_engine(settings.effective_database_url)
    try:
        services = build_services(settings=settings, engine=engine, clock=Clock())
        org_id = agency.split("/", 1)[1]
        worker_id = practitioner.split("/", 1)[1]
        entries = (
            ("Organization", org_id, {"name": agency_name or org_id}),
            ("Practitioner", worker_id, {"name": [{"text": name or worker_id}]}),
        )
        for kind, rid, fields in entries:
            try:
                services.resources.read(caller=OPERATOR, resource_type=kind, resource_id=rid)
                continue
            except FHIRError:
                pass
            body = {"resourceType": kind, "id": rid, **fields}
            services.resources.update(
                caller=OPERATOR, resource_type=kind, resource_id=rid, body=orjson.dumps(body)
            )
            typer.echo(f"Added {kind}/{rid} to the directory.", err=True)
    finally:
        engine.dispose()


@users_cli.command("list")
def users_list() -> None:
    """Every account: email, name, agency, practitioner, status."""
    from rich.console import Console
    from rich.table import Table

    users = _people_call(lambda people: people.users())
    table = Table(title=f"{len(users)} people")
    for column in ("email", "name", "agency", "practitioner", "status"):
        table.add_column(column, overflow="fold")
    for user in users:
        status = "disabled" if user.disabled else ("locked" if user.locked_until else "active")
        table.add_row(user.email, user.name or "", user.agency, user.practitioner, status)
    Console().print(table)


@users_cli.command("password")
def users_password(email: Annotated[str, typer.Argument(help="The account's email.")]) -> None:
    """Set a new password (from stdin); unlocks the account and ends its sessions."""
    password = _read_password()
    _people_call(lambda people: people.set_password(email=email, password=password))
    typer.echo("Password changed; the account's sessions ended.")


@users_cli.command("disable")
def users_disable(email: Annotated[str, typer.Argument(help="The account's email.")]) -> None:
    """Disable an account (its sessions end at once)."""
    _people_call(lambda people: people.set_disabled(email=email, disabled=True))
    typer.echo("Disabled.")


@users_cli.command("enable")
def users_enable(email: Annotated[str, typer.Argument(help="The account's email.")]) -> None:
    """Enable a disabled account."""
    _people_call(lambda people: people.set_disabled(email=email, disabled=False))
    typer.echo("Enabled.")


@users_cli.command("require-totp")
def users_require_totp(
    org: Annotated[str, typer.Option("--org", help="The agency: Organization/{id}.")],
    off: Annotated[bool, typer.Option("--off", help="Stop asking for it.")] = False,
) -> None:
    """Ask an agency's people for a second factor (TOTP) when they sign in; those without
    one set it up at their next sign-in."""
    _people_call(lambda people: people.require_totp(agency=org, required=not off))
    typer.echo(f"{org}: second factor {'not ' if off else ''}required.")


@users_cli.command("reset-totp")
def users_reset_totp(email: Annotated[str, typer.Argument(help="The account's email.")]) -> None:
    """Remove a person's second factor (a lost phone); their sessions end."""
    _people_call(lambda people: people.reset_totp(email=email))
    typer.echo("Second factor removed.")


@users_cli.command("unlock")
def users_unlock(email: Annotated[str, typer.Argument(help="The account's email.")]) -> None:
    """Unlock an account locked by failed sign-ins."""
    _people_call(lambda people: people.unlock(email=email))
    typer.echo("Unlocked.")


def main() -> None:
    """Console-script entry point."""
    cli()


def _agency_or_exit(agency: str | None) -> str | None:
    """The --agency value checked for shape (exit 2 otherwise)."""
    if agency is None:
        return None
    from app.fhir.errors import FHIRError
    from app.security.caller import parse_agency

    try:
        return parse_agency(agency, what="--agency")
    except FHIRError as exc:
        typer.echo(exc.diagnostics, err=True)
        raise typer.Exit(code=2) from exc


if __name__ == "__main__":
    main()
