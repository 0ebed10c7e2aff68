"""The casebridge command line: serve, and database migrations."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from app.config import get_settings
from app.storage.db import create_db_engine, current_revision, head_revision, is_migrated, upgrade

cli = typer.Typer(
    help="casebridge: FHIR R4 case management and referral exchange.", no_args_is_help=True
)
db_cli = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    migrate: Annotated[bool, typer.Option(help="Apply pending migrations first.")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Start the HTTP server (FHIR base at /fhir)."""
    import uvicorn

    settings = get_settings()
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
        access_log=os.environ.get("CASEBRIDGE_ACCESS_LOG", "1") == "1",
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


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
