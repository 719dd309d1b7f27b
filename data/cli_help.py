"""``--help`` / ``-h`` for every command-line entry point, without side effects.

Shared by the CLIs of every package (``data`` is the lowest layer, so ``launch``, ``rl``,
``rewards`` and ``data`` may all import it); it imports only the standard library. A
help request is answered before anything heavy is imported or any file is written:
call :func:`wants_help` first thing in ``main`` and return :func:`print_help`'s result.

Two kinds of CLI:

- ``key=value`` launchers (``launch.train``, ``launch.sft``, ``launch.sweep``, ...):
  :func:`keyvalue_help` renders the usage line, the module docstring, the flags, the
  config groups found on disk (``recipe=`` in ``configs/recipes``, ``cluster=`` in
  ``configs/cluster``, ``profile=`` in ``configs/profiles`` when that folder exists,
  sweep files in ``configs/sweeps``) and where the keys are documented
  (``configs/default.yaml``, ``docs/config.md``, ``python -m rl.config_doc``)::

      if wants_help(argv):
          return print_help(keyvalue_help("python -m launch.train", __doc__,
                                          usage="[recipe=NAME] [key=value ...] [--dry-run]",
                                          flags=[DRY_RUN_FLAG, ALLOW_MISSING_FLAG]))

- argparse CLIs: :func:`doc_parser` builds an ``ArgumentParser`` whose description is the
  whole module docstring, kept as written (``RawDescriptionHelpFormatter``), so that the
  sub-commands and examples listed there appear in ``--help``; argparse answers ``-h``
  and exits 0 before ``main`` does any work.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

#: Column at which help paragraphs are wrapped.
WIDTH = 100
#: The arguments that ask for help.
HELP_FLAGS = ("-h", "--help")
#: ``configs/`` of this checkout (the same folder as ``rl.config.CONFIG_DIR``).
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

#: ``(flag, description)`` pairs shared by the ``key=value`` launchers.
HELP_FLAG = ("-h, --help", "show this help and exit (writes nothing, starts nothing)")
DRY_RUN_FLAG = ("--dry-run", "print the resolved config and the placement plan (what Hydra's `--cfg job` "
                             "shows, plus where every pool would land), check the input files the run reads, "
                             "and start nothing; a missing file or a plan that does not fit is exit status 2")
ALLOW_MISSING_FLAG = ("--allow-missing", "with --dry-run: report missing input files (model.path, data.root, "
                                         "checkpoints) as warnings, exit 0 (planning on a machine without them)")

#: Where the config keys are documented (printed by :func:`keyvalue_help`).
KEYS_DOC = """keys (where they are documented):
  configs/default.yaml     every config key with its default and a comment
  python -m rl.config_doc  prints that file from the config schemas
  docs/config.md           how defaults, recipes, clusters, profiles and overrides combine
  key=value                overrides any key, e.g. trainer.total_steps=50 actor.optim.lr=2e-4"""


@dataclass(frozen=True)
class ConfigGroup:
    """One folder of named YAML files selected with ``option=NAME``."""

    option: str       # "recipe", "cluster", "profile", "sweep"
    folder: str       # relative to the checkout, e.g. "configs/recipes"
    names: tuple[str, ...]


#: ``option -> folder under configs/`` of the groups a launcher may list.
GROUP_FOLDERS = {"recipe": "recipes", "cluster": "cluster", "profile": "profiles", "sweep": "sweeps"}


def wants_help(argv: Sequence[str]) -> bool:
    """True when ``-h`` or ``--help`` is among ``argv`` (anywhere: ``recipe=x --help`` asks too)."""
    return any(arg in HELP_FLAGS for arg in argv)


def config_groups(options: Sequence[str] = ("recipe", "cluster", "profile"),
                  config_dir: Path = CONFIG_DIR) -> list[ConfigGroup]:
    """The groups of ``options`` whose folder exists under ``config_dir``, names sorted."""
    groups = []
    for option in options:
        folder = config_dir / GROUP_FOLDERS[option]
        if folder.is_dir():
            names = tuple(sorted(p.stem for p in folder.glob("*.yaml")))
            groups.append(ConfigGroup(option, f"configs/{GROUP_FOLDERS[option]}", names))
    return groups


def format_groups(groups: Sequence[ConfigGroup]) -> str:
    """``config groups`` section: one line per group, ``option=NAME  folder: name, name, ...``."""
    if not groups:
        return ""
    width = max(len(g.option) for g in groups) + len("=NAME")
    lines = ["config groups (files found on disk; a path to a .yaml file works too):"]
    for g in groups:
        lines += textwrap.wrap(f"{g.folder}: {', '.join(g.names) or '(none)'}", WIDTH,
                               initial_indent=f"  {g.option + '=NAME':<{width}}  ", subsequent_indent=" " * (width + 4))
    return "\n".join(lines)


def format_flags(flags: Sequence[tuple[str, str]]) -> str:
    """``flags`` section: one ``  flag  description`` line each (help flag last)."""
    rows = list(flags) + [HELP_FLAG]
    width = max(len(name) for name, _ in rows)
    lines = ["flags:"]
    for name, text in rows:
        lines += textwrap.wrap(text, WIDTH, initial_indent=f"  {name:<{width}}  ",
                               subsequent_indent=" " * (width + 4))
    return "\n".join(lines)


def keyvalue_help(prog: str, doc: Optional[str], usage: str, flags: Sequence[tuple[str, str]] = (),
                  groups: Sequence[str] = ("recipe", "cluster", "profile"), notes: str = "",
                  config_dir: Path = CONFIG_DIR) -> str:
    """The ``--help`` text of a ``key=value`` launcher.

    prog: ``python -m launch.train``; doc: the module docstring (printed whole); usage: the
    arguments after ``prog``; flags: ``(flag, description)`` pairs; groups: which config
    groups to list (those whose folder exists); notes: a closing paragraph.
    """
    parts = [f"usage: {prog} {usage}".rstrip(), (doc or "").strip(), format_flags(flags),
             format_groups(config_groups(groups, config_dir)), KEYS_DOC,
             textwrap.fill(notes.strip(), WIDTH) if notes.strip() else ""]
    return "\n\n".join(p for p in parts if p) + "\n"


def print_help(text: str) -> int:
    """Write ``text`` to stdout; returns 0 (the exit status of a help request)."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()
    return 0


def doc_parser(prog: str, doc: Optional[str], **kwargs) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` whose ``--help`` shows the whole docstring ``doc`` as written."""
    kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
    return argparse.ArgumentParser(prog=prog, description=(doc or "").strip(), **kwargs)


__all__ = ["WIDTH", "HELP_FLAGS", "CONFIG_DIR", "HELP_FLAG", "DRY_RUN_FLAG", "ALLOW_MISSING_FLAG", "KEYS_DOC", "ConfigGroup",
           "GROUP_FOLDERS", "wants_help", "config_groups", "format_groups", "format_flags", "keyvalue_help",
           "print_help", "doc_parser"]
