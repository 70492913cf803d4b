"""`plain`: text that is not ours (ids, values, paths, messages) into rich output.

Rich reads `[...]` as markup in everything it prints: a string, a table title or cell,
a panel. A tenant id `[/]` made `tokenops usage` die with MarkupError, and `[bold]x`
would restyle a line. Every piece of text a user, a producer or a server chose goes
through `plain` on its way to a console; our own markup (`[bold red]error:[/]`) does not.
"""

from __future__ import annotations

from rich.markup import escape


def plain(value: object) -> str:
    """`value` as text that rich prints exactly as written."""
    return escape(str(value))
