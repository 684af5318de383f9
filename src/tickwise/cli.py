"""The `tickwise` command: thin; it parses arguments and calls into the package.

Each area registers its commands from its own module in `tickwise.commands`, so the
command modules stay small and import heavy libraries only inside command bodies
(``tickwise --help`` stays fast).
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from tickwise.exceptions import TickwiseError

app = typer.Typer(
    name="tickwise",
    help=(
        "Self-hosted real-time market data and ML: ticks in from a simulator, a socket feed or "
        "files; durable bus; event-time OHLCV bars; warehouse and lake; signals, forecasts, "
        "anomalies; API and dashboard."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: Modules under tickwise.commands that add commands; each has ``register(app)``.
COMMAND_MODULES = [
    "pipeline",
    "analytics",
    "lake",
    "forecast",
    "anomaly",
    "serve",
]


def _register() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"tickwise.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"tickwise.commands.{name}":
                continue  # an area not built yet
            raise
        module.register(app)


_register()


def _click_exceptions() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """Click's Abort and ClickException classes: those of click itself and those of the copy
    that newer typer versions vendor (``typer._click``), whose exceptions are not click's."""
    import click

    aborts: list[type[BaseException]] = [click.exceptions.Abort]
    usage: list[type[BaseException]] = [click.ClickException]
    try:
        from typer._click import exceptions as vendored  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        aborts += [c for c in (getattr(vendored, "Abort", None),) if c is not None]
        usage += [c for c in (getattr(vendored, "ClickException", None),) if c is not None]
    return tuple(aborts), tuple(usage)


def main() -> None:
    """Run the CLI; errors become one line on stderr and a non-zero exit code."""
    try:
        app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except TickwiseError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # the supervisor: never show a user a traceback
        aborts, usage = _click_exceptions()
        if isinstance(exc, aborts):
            sys.exit(130)
        if isinstance(exc, usage):  # a missing or bad option: click's usage message
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        if os.environ.get("TICKWISE_DEBUG"):
            raise
        typer.echo(
            f"error: internal error {type(exc).__name__}: {exc} "
            "(set TICKWISE_DEBUG=1 to see the traceback)",
            err=True,
        )
        sys.exit(1)
if __name__ == "__main__":
    main()
