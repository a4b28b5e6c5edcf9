"""`curate argilla`: the local Argilla server, users and workspaces, and review sync."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Annotated

import typer

from codecurate.cli.common import ConfigOption, console, err_console, friendly_errors, load_config
from codecurate.cli.pipeline import run_and_summarize
from curation.errors import CurateError

argilla_app = typer.Typer(
    help="Human review in Argilla: the local server, users, sync.", no_args_is_help=True
)
users_app = typer.Typer(help="Argilla users and workspaces.", no_args_is_help=True)
argilla_app.add_typer(users_app, name="users")


@argilla_app.command("up")
@friendly_errors
def argilla_up(config: ConfigOption = Path("curate.toml")) -> None:
    """Start the local Argilla (the real argilla-server, SQLite, Redis) on 127.0.0.1; the
    first start creates its virtualenv. When [review].port is taken, a free port is used and
    printed. Reviewers log in at the printed URL.

    Example: curate argilla up -c curate.toml
    """
    from argilla_setup import local_server

    pipeline = load_config(config)
    server = local_server(pipeline.review, pipeline.workdir)
    err_console.print("starting argilla-server (the first start installs it, ~1 min)...")
    state = server.up()
    if state.port != pipeline.review.port:
        console.print(f"port {pipeline.review.port} is taken by another program: "
                      f"Argilla runs on port {state.port} instead")  # fmt: skip
    console.print(f"Argilla is up: {state.url}")
    _print_logins(server.home, server.secrets_path)


def _print_logins(home: Path, owner_file: Path) -> None:
    """Who can log in and where each secret is: never a password or key itself."""
    from argilla_setup.votes import AUTO_REVIEWER

    def where(path: Path) -> str:
        return f"in {path} (mode {stat.S_IMODE(path.stat().st_mode):o})"

    console.print(f"  owner: argilla, API key and password {where(owner_file)}", highlight=False)
    for path in sorted((home / "passwords").glob("*.password")):
        if path.stem != AUTO_REVIEWER:
            console.print(f"  login: {path.stem}, password {where(path)}", highlight=False)


@argilla_app.command("down")
@friendly_errors
def argilla_down(config: ConfigOption = Path("curate.toml")) -> None:
    """Stop the local Argilla; its data stays in <workdir>/argilla.

    Example: curate argilla down -c curate.toml
    """
    from argilla_setup import local_server

    pipeline = load_config(config)
    stopped = local_server(pipeline.review, pipeline.workdir).down()
    console.print("Argilla stopped" if stopped else "Argilla was not running")


@argilla_app.command("status")
@friendly_errors
def argilla_status(config: ConfigOption = Path("curate.toml")) -> None:
    """Whether the local Argilla runs and where, who can log in (where each password is kept,
    never the password), and the last sync's review numbers: statuses, what is undecided,
    per reviewer (answered, agreement with the final decision, discards, gold) and the
    agreement per round (raw and Krippendorff's alpha).

    Example: curate argilla status -c curate.toml
    """
    from argilla_setup import local_server
    from codecurate.summary import read_manifests, story_tables
    from curation.story import StoryContext

    pipeline = load_config(config)
    server = local_server(pipeline.review, pipeline.workdir)
    state = server.state()
    if state is None:
        console.print(f"Argilla is not running; start it with: curate argilla up -c {config}")
        raise typer.Exit(1)
    console.print(f"Argilla is up: {state.url}  (data in {server.home})")
    _print_logins(server.home, server.secrets_path)
    reviews = [m for m in read_manifests(pipeline.workdir) if m.stage == "review"]
    for table in story_tables(reviews, StoryContext(pipeline.workdir, config.resolve().parent)):
        console.print(table)


@users_app.command("apply")
@friendly_errors
def argilla_users_apply(
    config: ConfigOption = Path("curate.toml"),
    roster: Annotated[
        Path | None, typer.Argument(help="Roster YAML (default: [review].roster).")
    ] = None,
) -> None:
    """Create the roster's workspaces and users (owner, admin, annotator) and their
    memberships; applying again changes nothing. Passwords come from the variables the roster
    names, or are generated into <workdir>/argilla/passwords/. API keys are never printed.

    Example: curate argilla users apply -c curate.toml team.yaml
    """
    from argilla_setup import connect
    from argilla_setup.users import apply_roster, load_roster

    pipeline = load_config(config)
    path = roster or pipeline.review.roster
    if path is None:
        raise CurateError("no roster: pass a YAML file or set [review].roster")
    client = connect(pipeline.review, pipeline.workdir)
    changes = apply_roster(client, load_roster(path), pipeline.workdir / "argilla" / "passwords")
    for change in changes or ["nothing to change"]:
        console.print(change)


@argilla_app.command("sync")
@friendly_errors
def argilla_sync(config: ConfigOption = Path("curate.toml")) -> None:
    """Push new and changed annotations to Argilla and pull every decision so far into the
    review stage's Parquet (review_status, reviewers, final_instruction).

    Example: curate argilla sync -c curate.toml
    """
    pipeline = load_config(config)
    if "review" not in pipeline.stages:
        raise CurateError(f'{config}: add "review" to stages to review in Argilla')
    run_and_summarize(config, pipeline, "review", ["review"])
