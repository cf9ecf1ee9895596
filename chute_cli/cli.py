"""What every `chute` command shares: the Typer app, its common options, the API client and the
one-line errors.

Every mistake is one line on stderr, ``error: …``, and a non-zero exit: 2 for a usage error (a
bad option, a missing file), 1 for an error answer of the API or an API that cannot be reached
(`upload` uses 2 for every error, since its 1 says that units failed).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import requests
import typer
from pydantic import ValidationError
from rich.console import Console
from typer.core import TyperGroup

from chute_cli.client import LOCAL_CONFIG_PATH, ApiError, ChuteClient, load_local_config

EXIT_FAILED = 1
EXIT_USAGE = 2

console = Console(stderr=True)


class OneLineErrors(TyperGroup):
    """Usage errors as one line, ``error: Missing argument 'PATH...'. (chute upload --help)``
    with exit code 2, instead of Typer's usage box."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(
                args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra
            )
        try:
            # Not standalone: errors come back here, and typer.Exit(code) as the return value.
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.TyperException as error:  # Typer's (vendored) click.ClickException
            # No arguments at all: the help is printed already (as Typer's rich_format_error).
            if type(error).__name__ != "NoArgsIsHelpError":
                say_error(_one_line(error))
            sys.exit(getattr(error, "exit_code", EXIT_USAGE))
        except typer.Abort:
            say_error("aborted.")
            sys.exit(EXIT_FAILED)
        sys.exit(code if isinstance(code, int) else 0)


def _one_line(error: typer.TyperException) -> str:
    # Typer reports a value its pydantic check refused as "Value error, …".
    message = " ".join(error.format_message().replace("Value error, ", "").split())
    command_path = getattr(getattr(error, "ctx", None), "command_path", None)
    return f"{message} (see `{command_path} --help`)" if command_path else message


app = typer.Typer(
    name="chute",
    help="Background processing for large uploads, with per-file progress.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=OneLineErrors,
)

RootOption = Annotated[
    Path | None,
    typer.Option(
        "--root",
        envvar="CHUTE_ROOT",
        help="Project directory holding .chute/ (default: the current directory).",
    ),
]
ApiUrlOption = Annotated[
    str | None,
    typer.Option(envvar="CHUTE_API_URL", help="API base URL (default: the local stack's)."),
]
TokenOption = Annotated[
    str | None,
    typer.Option(envvar="CHUTE_TOKEN", help="Bearer token (default: the local stack's dev token)."),
]
TimeoutOption = Annotated[
    float, typer.Option(min=1, help="Give up watching after this many seconds.")
]
AsJsonOption = Annotated[
    bool, typer.Option("--json", help="Machine-readable output: JSON on stdout.")
]


@app.callback()
def _main(ctx: typer.Context, root: RootOption = None) -> None:
    ctx.obj = (root or Path.cwd()).resolve()


def root_of(ctx: typer.Context) -> Path:
    root = ctx.obj
    assert isinstance(root, Path)
    return root


def say_error(message: str) -> None:
    """``error: message`` on stderr, on one line whatever the terminal's width."""
    console.print(f"error: {message}", style="red", markup=False, highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    say_error(message)
    raise typer.Exit(code)


def say(message: str) -> None:
    """Human text on stderr, as it is (no markup), on one line."""
    console.print(message, markup=False, highlight=False, soft_wrap=True)


@contextmanager
def api_errors(client: ChuteClient, code: int = EXIT_FAILED) -> Iterator[None]:
    """An error answer, or no answer, from the API (or storage), or a file that cannot be read
    while it is sent, as one line and exit `code`."""
    try:
        yield
    except ApiError as error:
        hint = "; check --token or CHUTE_TOKEN" if error.status == 401 else ""
        fail(f"{error.message} ({error.code}, HTTP {error.status}){hint}", code)
    except requests.ConnectionError:
        fail(
            f"Could not connect to the API at {client.api_url}: is it running? "
            "Locally, start it with `make run`.",
            code,
        )
    except requests.RequestException as error:
        fail(f"The request to {client.api_url} failed: {error}", code)
    except OSError as error:  # a file to upload that went away or cannot be read any more
        fail(f"{error.filename or 'a file'}: {error.strerror or error}.", code)


def make_client(
    root: Path, api_url: str | None, token: str | None, code: int = EXIT_FAILED
) -> ChuteClient:
    """A client of --api-url and --token (or CHUTE_API_URL, CHUTE_TOKEN), else of the local
    stack's .chute/local.json under root."""
    if api_url and token:
        return ChuteClient(api_url, token)
    path = root / LOCAL_CONFIG_PATH
    try:
        config = load_local_config(root)
    except FileNotFoundError:
        fail(
            f"No local stack config at {path}: run `make run` first, "
            "or pass --api-url and --token.",
            code,
        )
    except (ValidationError, ValueError, OSError) as error:
        fail(f"{path} cannot be read ({type(error).__name__}): restart the stack.", code)
    return ChuteClient(api_url or config.api_url, token or config.token)
