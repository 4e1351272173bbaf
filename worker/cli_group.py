"""The `tenant-sync` click group as the launcher runs it: each command built when first asked for.

typer turns every function registered on the app into a click command (its signature read, its
type hints resolved, its options made) each time the program starts, before it knows which
command was typed: `tenant-sync status` paid for some forty commands and sub-commands. Here the
group starts with a builder per command, in the order typer would have added them, and a command
is built by typer's own function the first time the group looks it up: `status` builds `status`
alone, `--help` (which lists every command) builds them all, so every help text, error and exit
code is what typer's eager group gives (docs/performance.md, "CLI start-up").
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, MutableMapping
from functools import partial
from typing import TYPE_CHECKING, Any

import typer
from typer import main as typer_main
from typer.core import TyperGroup

if TYPE_CHECKING:
    from typer._click import Command  # typer's vendored click


class _OnDemand(MutableMapping[str, "Command"]):
    """A group's commands by name, each built on first lookup; names and order known at once."""

    def __init__(self, builders: dict[str, Callable[[], Command]]) -> None:
        self._builders = builders
        self._built: dict[str, Command] = {}

    def __getitem__(self, name: str) -> Command:
        built = self._built.get(name)
        if built is None:
            built = self._built[name] = self._builders[name]()
        return built

    def __contains__(self, name: object) -> bool:
        return name in self._builders  # a name's presence builds nothing

    def get(self, name: str, default: Any = None) -> Any:
        # click's lookup of the command typed; Mapping's own would turn a KeyError raised while
        # building into "no such command".
        return self[name] if name in self._builders else default

    def __setitem__(self, name: str, command: Command) -> None:
        self._builders[name] = partial(_same, command)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._builders[name]
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)


def _same(command: Command) -> Command:
    return command


def on_demand_group(app: typer.Typer) -> Any:
    """`app`'s click group (what typer runs for `app()`), its commands built on demand; an app
    this does not cover (shell completion, a sub-app added without a name, whose commands typer
    merges into the group) gets typer's eager group."""
    if getattr(app, "_add_completion", True):
        return typer_main.get_command(app)
    builders: dict[str, Callable[[], Command]] = {}
    # As typer.main.get_group_from_info: the commands first, then the sub-apps, a later one of
    # the same name replacing an earlier one in its place.
    for info in app.registered_commands:
        assert info.callback is not None, "a command must have a callback"
        name = info.name or typer_main.get_command_name(info.callback.__name__)
        builders[name] = partial(
            typer_main.get_command_from_info,
            info,
            pretty_exceptions_short=app.pretty_exceptions_short,
            rich_markup_mode=app.rich_markup_mode,
        )
    for group_info in app.registered_groups:
        group_name = typer_main.solve_typer_info_defaults(group_info).name
        if not group_name:
            return typer_main.get_command(app)
        builders[group_name] = partial(
            typer_main.get_group_from_info,
            group_info,
            pretty_exceptions_short=app.pretty_exceptions_short,
            rich_markup_mode=app.rich_markup_mode,
            suggest_commands=app.suggest_commands,
        )
    # The group itself (its callback, options and help) from an app without commands.
    bare = copy.copy(app)
    bare.registered_commands = []
    bare.registered_groups = []
    group: TyperGroup = typer_main.get_group(bare)
    group.commands = _OnDemand(builders)
    return group
