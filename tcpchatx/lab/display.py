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

import html

from ..analysis.labels import CLOSE_KINDS, ZEEK_CONN_STATES, ZEEK_HISTORY_LETTERS
from ..tcp_flags import LETTERS, MEANINGS, NAMES
from .figures import notebook_shell
from .session import current_session

MISSING = "—"
MAX_ROWS = 60  # a longer table shows its first SHOWN_WHEN_LONG rows, and says so
SHOWN_WHEN_LONG = 50
FIXED_WIDTH = "font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace"
FIXED_WIDTH_COLUMNS = ("history", "flags")
#: Flag letter -> (name, meaning), in the order the legend explains them: S, A, P, F, R, ...
FLAGS = {LETTERS[bit]: (NAMES[bit], meaning) for bit, meaning in MEANINGS.items()}


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
    """The table as plain text: no index, text padded on the right, "—" where a value is missing."""
    shown = _plain_frame(df)
    total = len(shown)
    shown = _first_rows(shown)
    # Columns by position, not by name: a table may repeat a name.
    text = [i for i in range(shown.shape[1]) if not _is_number_column(shown.iloc[:, i])]
    shown = shown.astype(object).where(shown.notna(), MISSING)  # NaN, None and <NA> alike
    headers = [str(column) for column in shown.columns]
    for i in text:  # text reads from the left: padded there, its header too; numbers stay right
        values = shown.iloc[:, i].astype(str)
        width = max([len(headers[i]), *values.str.len()])
        shown.iloc[:, i] = values.str.ljust(width)
        headers[i] = headers[i].ljust(width)
    shown.columns = headers
    return shown.to_string(index=False) + _rows_note(total, plain=True)


def table_html(styler) -> str:
    """A Styler (its colours kept) as HTML in the lab's look; see the module's docstring.
    Text is escaped: a chat line's ``<alice>`` is shown, not taken for a tag."""
    df = styler.data
    plain = _plain_frame(df)
    total = len(plain)
    if not plain.columns.is_unique:  # pandas cannot style a column it cannot name: its own view, escaped
        return _first_rows(plain).to_html(index=False, na_rep=MISSING) + _rows_note(total)
    if plain is not df or total > MAX_ROWS:
        styler = _restyled(styler, _first_rows(plain))
        df = styler.data
    styler = styler.hide(axis="index").format(na_rep=MISSING, escape="html")
    text_columns = [c for c in df.columns if not _is_number_column(df[c])]
    if text_columns:
        styler = styler.set_properties(subset=text_columns, **{"text-align": "left"})
        styler = styler.set_table_styles(
            {c: [{"selector": "th", "props": "text-align: left"}] for c in text_columns}, overwrite=False)
    fixed = [c for c in FIXED_WIDTH_COLUMNS if c in df.columns]
    if fixed:
        styler = styler.set_properties(subset=fixed, **dict([FIXED_WIDTH.split(": ", 1)]))
    styler = styler.set_uuid(_next_id())
    legend = legend_for(df)
    return styler.to_html() + (f"<p style='font-size: 85%'>{legend}</p>" if legend else "") + _rows_note(total)


def legend_for(df) -> str:
    """A short legend (HTML) of the codes in ``df`` not yet explained in this notebook, or ""."""
    explained = current_session().legends_shown
    parts = []
    if "flags" in df.columns:
        letters = sorted({ch for value in df["flags"].dropna() for ch in str(value) if ch in FLAGS},
                         key=list(FLAGS).index)
        new = [ch for ch in letters if f"flag {ch}" not in explained]
        if new:
            explained.update(f"flag {ch}" for ch in new)
            parts.append("<b>flags</b>: " + "; ".join(
                f"<code>{ch}</code> {FLAGS[ch][0]} ({FLAGS[ch][1]})" for ch in new)
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


def _plain_frame(df):
    """``df`` with a plain 0, 1, 2 index: one that means something (a group, a name)
    becomes columns of its own; one that does not is dropped, as it is not shown."""
    if _has_meaningful_index(df):
        return df.reset_index(allow_duplicates=True)
    if _has_plain_index(df):
        return df
    return df.reset_index(drop=True)


def _has_plain_index(df) -> bool:
    import pandas as pd

    index = df.index
    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 and index.name is None


def _has_meaningful_index(df) -> bool:
    """An index with a name (or several levels) says something: keep it, as columns."""
    return df.index.nlevels > 1 or any(name is not None for name in df.index.names)


def _first_rows(df):
    """All of ``df``, or its first SHOWN_WHEN_LONG rows when it has more than MAX_ROWS."""
    return df if len(df) <= MAX_ROWS else df.head(SHOWN_WHEN_LONG)


def _is_number_column(column) -> bool:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return is_numeric_dtype(column) and not is_bool_dtype(column)


def _next_id() -> str:
    """An id per table shown in this notebook: its CSS applies to it alone, and a fresh
    kernel numbers the tables the same way on every run (stored outputs stay the same)."""
    session = current_session()
    session.tables_shown += 1
    return f"lab{session.tables_shown}"


def _rows_note(rows: int, plain: bool = False) -> str:
    """Under a table cut to its first rows: how many it has, and where the rest are."""
    if rows <= MAX_ROWS:
        return ""
    text = f"The first {SHOWN_WHEN_LONG} of {rows} rows; the DataFrame holds them all."
    return "\n" + text if plain else f"<p style='font-size: 85%'>{text}</p>"
