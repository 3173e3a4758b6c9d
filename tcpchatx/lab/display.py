"""How tables look in a notebook: no index column, text read left to right, "—" where a
value is missing, Zeek's history in a fixed-width font, and a short legend of the codes
(flags, conn_state, history letters, close kinds) under the first table that uses them.

A DataFrame's own notebook view was made for data scientists: it numbers the rows
0, 1, 2 beside our ``frame`` 1, 2, 3, right-aligns and cuts long text, prints "NaN",
and draws ``ShAdDaFf`` in a proportional font where it is easy to misread.  This
module gives every table the lab shows one plain look instead, and the same HTML on
every run (so that notebooks stored with their outputs do not change when nothing did).

Like :mod:`.figures`, it changes the kernel only when a notebook chooses its capture
mode (its first cell), never at import.  The DataFrames themselves are untouched:
students still compute with them.
"""

from __future__ import annotations

import hashlib
import html

from ..analysis.labels import CLOSE_KINDS, ZEEK_CONN_STATES, ZEEK_HISTORY_LETTERS
from ..tcp_flags import LETTERS, NAMES
from .figures import notebook_shell
from .session import current_session

MISSING = "—"
MAX_ROWS = 60  # more than this and a table shows its first SHOWN_WHEN_LONG rows
SHOWN_WHEN_LONG = 50
FIXED_WIDTH = "font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace"
FIXED_WIDTH_COLUMNS = ("history", "flags")

FLAG_NAMES = {LETTERS[bit]: NAMES[bit] for bit in sorted(LETTERS, key=lambda bit: "SAPFRUEC".index(LETTERS[bit]))}
FLAG_MEANINGS = {"S": "synchronise: open, with my ISN", "A": "the ack number is valid",
                 "P": "push: hand the data to the application now", "F": "finish: I will send no more",
                 "R": "reset: abort the connection", "U": "urgent", "E": "ECN echo", "C": "congestion window reduced"}


def show_tables_plainly() -> None:
    """In a Jupyter kernel, draw every DataFrame and every table the lab styles this way."""
    shell = notebook_shell()
    if shell is None:
        return
    import pandas as pd
    from pandas.io.formats.style import Styler

    formatters = shell.display_formatter.formatters
    formatters["text/html"].for_type(pd.DataFrame, lambda df: table_html(df.style))
    formatters["text/html"].for_type(Styler, table_html)
    formatters["text/plain"].for_type(pd.DataFrame, lambda df, p, cycle: p.text(table_text(df)))
    formatters["text/plain"].for_type(Styler, lambda st, p, cycle: p.text(table_text(st.data)))


def table_text(df) -> str:
    """The table as plain text, without the index, "—" where a value is missing."""
    df = _with_meaningful_index(df)
    shown = df.head(MAX_ROWS)
    text_columns = [c for c in shown.columns if not _is_number_column(shown[c])]
    shown = shown.astype(object).where(shown.notna(), MISSING)  # NaN, None and <NA> alike
    headers = {}
    for column in text_columns:  # text reads from the left: padded there, header too; numbers stay right
        values = shown[column].astype(str)
        width = max(values.str.len().max(), len(str(column)))
        shown[column] = values.str.ljust(width)
        headers[column] = str(column).ljust(width)
    return shown.rename(columns=headers).to_string(index=False) + _rows_note(len(df), plain=True)


def table_html(styler) -> str:
    """A Styler (its colours kept) as HTML in the lab's look; see the module's docstring."""
    df = styler.data
    if _has_meaningful_index(df):  # a real index (a group, a name) becomes columns of its own
        styler = _restyled(styler, _with_meaningful_index(df))
        df = styler.data
    if len(df) > MAX_ROWS:
        styler = _restyled(styler, df.head(SHOWN_WHEN_LONG))
    styler = styler.hide(axis="index").format(na_rep=MISSING)
    text_columns = [c for c in df.columns if not _is_number_column(df[c])]
    if text_columns:
        styler = styler.set_properties(subset=text_columns, **{"text-align": "left"})
        styler = styler.set_table_styles(
            {c: [{"selector": "th", "props": "text-align: left"}] for c in text_columns}, overwrite=False)
    fixed = [c for c in FIXED_WIDTH_COLUMNS if c in df.columns]
    if fixed:
        styler = styler.set_properties(subset=fixed, **dict([FIXED_WIDTH.split(": ", 1)]))
    styler = styler.set_uuid(_stable_id(styler.data))
    legend = legend_for(df)
    note = _rows_note(len(styler.data) if len(df) <= MAX_ROWS else len(df))
    return styler.to_html() + (f"<p style='font-size: 85%'>{legend}</p>" if legend else "") + note


def legend_for(df) -> str:
    """A short legend (HTML) of the codes in ``df`` not yet explained in this notebook, or ""."""
    explained = current_session().legends_shown
    parts = []
    if "flags" in df.columns:
        letters = sorted({ch for value in df["flags"].dropna() for ch in str(value) if ch in FLAG_NAMES},
                         key=list(FLAG_NAMES).index)
        new = [ch for ch in letters if f"flag {ch}" not in explained]
        if new:
            explained.update(f"flag {ch}" for ch in new)
            parts.append("<b>flags</b>: " + "; ".join(
                f"<code>{ch}</code> {FLAG_NAMES[ch]} ({FLAG_MEANINGS[ch]})" for ch in new)
                + ". Letters combine: <code>AP</code> is ACK + PSH.")
    for column, meanings in (("conn_state", ZEEK_CONN_STATES), ("close_kind", CLOSE_KINDS)):
        if column in df.columns:
            new = [v for v in dict.fromkeys(df[column].dropna().astype(str)) if f"{column} {v}" not in explained]
            if new:
                explained.update(f"{column} {v}" for v in new)
                parts.append(f"<b>{column}</b>: " + "; ".join(
                    f"<code>{html.escape(v)}</code> {html.escape(meanings.get(v, ''))}" for v in new))
    if "history" in df.columns:
        letters = {ch.lower() for value in df["history"].dropna() for ch in str(value)}
        new = [ch for ch in ZEEK_HISTORY_LETTERS if ch in letters and f"history {ch}" not in explained]
        if new:
            explained.update(f"history {ch}" for ch in new)
            parts.append("<b>history</b> (Zeek's, one letter per event; upper case: the client sent it, "
                         "lower case: the server): " + "; ".join(
                             f"<code>{ch.upper()}</code>/<code>{ch}</code> {html.escape(ZEEK_HISTORY_LETTERS[ch])}"
                             for ch in new))
    return "<br>".join(parts)


def _restyled(styler, df):
    """``styler``'s row colours applied to another frame (a reset index or fewer rows)."""
    new = df.style
    new.use(styler.export())
    return new


def _has_meaningful_index(df) -> bool:
    import pandas as pd

    index = df.index
    plain = isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 and index.name is None
    return not plain and (index.nlevels > 1 or any(name is not None for name in index.names))


def _with_meaningful_index(df):
    return df.reset_index() if _has_meaningful_index(df) else df


def _is_number_column(column) -> bool:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return is_numeric_dtype(column) and not is_bool_dtype(column)


def _stable_id(df) -> str:
    """The same id for the same table on every run, so stored outputs stay the same."""
    return "lab" + hashlib.sha1(df.to_csv().encode()).hexdigest()[:10]


def _rows_note(rows: int, plain: bool = False) -> str:
    if rows <= MAX_ROWS:
        return ""
    text = f"The first {SHOWN_WHEN_LONG if not plain else MAX_ROWS} of {rows} rows; the DataFrame holds them all."
    return "\n" + text if plain else f"<p style='font-size: 85%'>{text}</p>"
