"""The typer application: one-line errors, exit codes, signals, progress and result printing."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import typer
from typer.core import TyperGroup

from accelkit import __version__
from accelkit.errors import AccelkitError

# typer >= 0.2x vendors click as typer._click (its classes derive from it); older typer uses click.
click: Any = getattr(typer, "_click", None) or __import__("click")

F = TypeVar("F", bound=Callable[..., Any])

#: Exit codes: 0 success, 1 a measured failure, 2 a user mistake, 70 an unexpected internal error, 130 Ctrl-C, 143 SIGTERM.
EXIT_INTERNAL = 70  # EX_SOFTWARE: an unexpected exception (a bug), printed as one line
EXIT_INTERRUPT = 130
EXIT_TERMINATED = 143


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so ``finally`` blocks clean up before exit 143."""


def printable(text: str) -> str:
    """Text safe to print: file names that are not valid UTF-8 (surrogate escapes) shown as ``\\xff``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _err(msg: str) -> None:
    typer.echo(printable(f"error: {' '.join(str(msg).split())}"), err=True)


def _bad_parameter_message(exc: Any) -> str:
    """One line for a bad flag value; an unknown choice reads ``--flag 'x' is unknown; choose one of ...``."""
    msg = str(getattr(exc, "message", "") or exc).strip()
    msg = re.sub(r"^Value error, ", "", msg)
    param = getattr(exc, "param", None)
    opts = getattr(param, "opts", None) or []
    m = re.match(r"^('.*?'|\S+) is not one of (.*?)\.?$", msg)
    if m and opts:
        return f"{opts[0]} {m.group(1)} is unknown; choose one of {m.group(2)}"
    if opts:
        return f"invalid value for {opts[0]}: {msg}"
    return msg


class AccelkitGroup(TyperGroup):
    """Runs click without its standalone error printing, so every failure is one ``error:`` line."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(
                args,
                prog_name,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        old = signal.getsignal(signal.SIGTERM)
        with contextlib.suppress(
            ValueError
        ):  # not the main thread (tests): leave the handler alone
            signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            rv = super().main(
                args,
                prog_name,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
            code = rv if isinstance(rv, int) else 0
        except typer.BadParameter as exc:
            _err(_bad_parameter_message(exc))
            code = 2
        except click.exceptions.ClickException as exc:
            _err(exc.format_message())
            code = exc.exit_code
        except typer.Exit as exc:
            code = exc.exit_code
        except typer.Abort:
            _err("interrupted")
            code = EXIT_INTERRUPT
        except AccelkitError as exc:  # raised outside a command body (a callback)
            _err(str(exc))
            code = exc.exit_code
        except Terminated:
            _err("terminated")
            code = EXIT_TERMINATED
        finally:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, old)
        sys.exit(code)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


app = typer.Typer(
    name="accelkit",
    cls=AccelkitGroup,
    help="Make trained image generators fast, and prove it: export verified ONNX (fp32/fp16/int8), "
    "prune, build TensorRT engines, and benchmark images/sec and quality drift per backend. "
    "Every command defaults to the bundled DCGAN demo generator.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def handle_errors(fn: F) -> F:
    """Turn an :class:`AccelkitError` into one line on stderr and its exit code (2)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AccelkitError as exc:
            if os.environ.get("ACCELKIT_DEBUG"):
                raise
            _err(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            _err("interrupted")
            raise typer.Exit(EXIT_INTERRUPT) from None
        except Terminated:
            _err("terminated")
            raise typer.Exit(EXIT_TERMINATED) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # a failure accelkit did not foresee: one line, not a traceback
            if os.environ.get("ACCELKIT_DEBUG"):
                raise
            from accelkit.errors import one_line

            _err(
                f"unexpected {one_line(exc)}; this is a bug in accelkit or in the generator: rerun with ACCELKIT_DEBUG=1 for the traceback and report it"
            )
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def progress_status(enabled: bool = True) -> Iterator[Callable[[str], None]]:
    """A spinner on stderr for long steps; yields a callback that updates its text.

    On a terminal it animates; elsewhere (CI logs) each step prints once as a line, at
    most one repeat of the same kind of step per 5 s.
    """
    from rich.console import Console

    console = Console(stderr=True)
    if not enabled:
        yield lambda msg: None
        return
    if not console.is_terminal:
        last: dict[str, Any] = {"key": "", "t": 0.0}

        def line(msg: str) -> None:
            key = msg.split(":")[0]
            now = time.monotonic()
            if key != last["key"] or now - last["t"] >= 5.0:
                # one line per step, never wrapped at the console width: logs are read and grepped by line
                console.print(f"[dim]… {msg}[/dim]", highlight=False, soft_wrap=True)
                last["key"], last["t"] = key, now

        yield line
        return
    with console.status("working…") as status:
        yield lambda msg: status.update(msg + "…")


def emit(result: Any, as_json: bool = False) -> None:
    """Print a pipeline result (text or JSON), its warnings on stderr, and exit with its code."""
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        typer.echo(printable(result.to_text()))
    for w in getattr(result, "warnings", ()):
        typer.echo(printable(f"warning: {w}"), err=True)
    code = int(getattr(result, "exit_code", 0))
    if code:
        raise typer.Exit(code)


def _version_cb(value: bool) -> None:
    if value:
        typer.echo(f"accelkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_cb, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Log what the library does (to stderr)."
    ),
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


#: ``time.monotonic()`` when this process started, set by :func:`main` (a real ``accelkit``
#: process); None when commands are invoked in-process (tests, notebooks).
_PROCESS_START: list[float] = []


def command_start() -> float:
    """When the running command started, for time budgets that cover the whole command: the
    process's start in a real ``accelkit`` process (interpreter start-up and imports count),
    else now."""
    return _PROCESS_START[0] if _PROCESS_START else time.monotonic()


def main() -> None:
    """Console-script entry point."""
    from accelkit.host import process_age_s

    _PROCESS_START[:] = [time.monotonic() - process_age_s()]
    app()
