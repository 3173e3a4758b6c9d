"""How Figures appear in a notebook: as images, although the plots never touch pyplot.

This is the one thing the lab changes in the kernel it runs in, and it does so when
a notebook chooses its capture mode (its first cell), never at import.
"""

from __future__ import annotations


def show_figures_inline() -> None:
    """In a Jupyter kernel, show matplotlib Figures (what tcpchatx.plots returns) as images.

    The plots never touch pyplot, so nothing else registers the image formatter that
    ``%matplotlib inline`` would; this does, once: a kernel that already shows Figures
    (after an earlier call, or ``%matplotlib inline``) is left as it is.
    """
    shell = notebook_shell()
    if shell is None:
        return
    from IPython.core.pylabtools import select_figure_formats
    from matplotlib.figure import Figure

    if any(Figure in formatter.type_printers for formatter in shell.display_formatter.formatters.values()):
        return  # this kernel already shows Figures: nothing to do, and nothing of its own to undo
    select_figure_formats(shell, {"png"}, bbox_inches="tight")


def notebook_shell():
    """The IPython shell this code runs in, if it can display rich output; else None."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell if shell is not None and hasattr(shell, "display_formatter") else None
