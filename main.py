"""Convscope entry point: `python main.py` opens the window; `python main.py COMMAND ...` is the CLI.

The window opens for no arguments, for `--model SPEC`, and for image paths that exist (or
`builtin:` sample images). Anything else is taken for a mistyped command: one line on stderr
with the list of commands, exit 2, so `python main.py evaluat cam` does not open a window with
"evaluat" and "cam" as images.
"""

from __future__ import annotations

import os
import sys

# Qt's own command-line options that take a value (QGuiApplication); they pass through to Qt.
_QT_OPTIONS_WITH_VALUE = frozenset(
    {"-platform", "-platformpluginpath", "-platformtheme", "-plugin", "-qwindowgeometry", "-geometry",
     "-qwindowicon", "-qwindowtitle", "-title", "-display", "-style", "-stylesheet", "-session"}
)  # fmt: skip


def window_arguments_problem(argv: list[str]) -> str | None:
    """Why argv (not a CLI command) cannot open the window, or None when it can."""
    positionals: list[str] = []
    skip = False
    for token in argv:
        if skip:
            skip = False
            continue
        if token.startswith("-"):
            skip = token in ("--model", *_QT_OPTIONS_WITH_VALUE)
            continue
        positionals.append(token)
    missing = [p for p in positionals if not (p.startswith("builtin:") or os.path.exists(p))]
    if not missing:
        return None
    if missing[0] == positionals[0]:
        return f"unknown command {missing[0]!r}"
    return f"no such file: {missing[0]}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from engine.cli import COMMANDS

    if argv and (argv[0] in COMMANDS or argv[0] in ("-h", "--help")):
        from engine.cli import main as cli_main

        return cli_main(argv)
    problem = window_arguments_problem(argv)
    if problem is not None:
        print(
            f"convscope: {problem}; commands: {', '.join(COMMANDS)} "
            "(or no arguments, --model SPEC and image paths to open the window)",
            file=sys.stderr,
        )
        return 2
    from gui.app import main as gui_main

    return gui_main(argv)


if __name__ == "__main__":
    sys.exit(main())
