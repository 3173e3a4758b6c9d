"""The lab network's stories in a notebook: one call plays a story across the router and
hands back its captures, its analysis and the kernel's numbers beside them.

    s = lab.story("rto")                     # played here, or opened from captures/lab/
    s.analysis("client")                     # the client's view, analysed
    s.outcome["tcp_info"]                    # what the kernel said while it played

In live and rootless mode alike the story plays in namespaces of its own
(:func:`tcpchatx.netlab.run_in_lab`; no capture rights needed).  In reference mode, or
where namespaces are off, it opens the story's reference captures in ``captures/lab/``
and what the story recorded beside them (``NAME.json``), made with the default
parameters.  A story that plays several runs (``fast-retransmit``: with and without
SACK; ``bottleneck``: one per congestion control; ``rtt``: one per delay) has *parts*:
``s.parts`` names them, and ``s.analysis("client", part="no_sack")`` picks one.
"""

from __future__ import annotations

import inspect
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..analysis import Analysis, analyze
from ..capture import CaptureError
from ..capture.errors import RootlessUnavailableError
from ..netlab import run_in_lab
from ..netlab.references import LAB_CAPTURES, with_folder
from ..scenarios.lab import LAB_STORIES
from .mode import current_mode, out_dir
from .printing import _shown, say


@dataclass
class StoryRun:
    """A lab story, played or opened: what it returned, and its captures' analyses."""

    name: str
    mode: str  # "live", "rootless" or "reference"
    outcome: dict[str, Any]
    requested: dict[str, Any] = field(default_factory=dict)

    @property
    def parts(self) -> list[str | None]:
        """The story's runs: ``[None]`` for a story of one run, else their names."""
        if "views" in self.outcome:
            return [None]
        return [key for key, value in self.outcome.items() if isinstance(value, dict) and "views" in value]

    def part(self, part: str | None = None) -> dict[str, Any]:
        """What one run recorded (the whole outcome for a story of one run)."""
        if part is None:
            if "views" not in self.outcome:
                raise ValueError(f"{self.name} has several runs: name one of {self.parts}")
            return self.outcome
        if part not in self.parts:
            raise ValueError(f"{self.name} has no run {part!r}; its runs are {self.parts}")
        return self.outcome[part]

    def views(self, part: str | None = None) -> dict[str, Path]:
        """The run's capture files: ``{"client": ..., "server": ...}``."""
        return {side: Path(path) for side, path in self.part(part)["views"].items()}

    def analysis(self, side: str = "client", part: str | None = None) -> Analysis:
        """One view of the run, analysed (once)."""
        return _analyse(str(self.views(part)[side]))


def _analyse(path: str) -> Analysis:
    """The capture at *path*, analysed once per version of the file: a story played again
    writes its captures under the same names."""
    return _analyse_version(path, *file_version(path))


def file_version(path: str) -> tuple[int, int]:
    """What tells one version of a file from the next: its modification time and size."""
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=64)
def _analyse_version(path: str, mtime_ns: int, size: int) -> Analysis:
    return analyze(path)


def story(name: str, mode: str | None = None, **params: Any) -> StoryRun:
    """Play the lab story *name* (see :data:`tcpchatx.scenarios.lab.LAB_STORIES`), or open
    its reference captures; say what happened, and return it."""
    if name not in LAB_STORIES:
        raise ValueError(f"no lab story {name!r}; the stories are {', '.join(LAB_STORIES)}")
    mode = mode or current_mode()
    if mode != "reference":
        say(f"Playing {name} across the lab's router: {LAB_STORIES[name].summary} ...")
        try:
            outcome = run_in_lab(f"tcpchatx.netlab.stories:{LAB_STORIES[name].function}",
                                 {"out_dir": str(out_dir()), **params})
        except RootlessUnavailableError as exc:
            say(f"The lab network needs namespaces, and here: {exc}. Opening the reference captures instead.")
        else:
            run = StoryRun(name, mode, outcome, params)
            _say_views(run)
            return run
    return reference_story(name, params)


def reference_story(name: str, requested: dict[str, Any] | None = None) -> StoryRun:
    """The story's reference captures and record in ``captures/lab/``."""
    record = LAB_CAPTURES / f"{name}.json"
    if not record.exists():
        raise CaptureError(f"no reference record {record}: `tcpchatx references --lab` makes it")
    run = StoryRun(name, "reference", with_folder(json.loads(record.read_text()), LAB_CAPTURES), requested or {})
    other = not_the_defaults(name, requested or {})
    if other:
        say(f"The reference captures of {name} were made with the default parameters, "
             f"not with {other}.")
    _say_views(run)
    return run


def not_the_defaults(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Those of *params* that differ from story *name*'s defaults (which its references used)."""
    from ..netlab import stories as played  # the story functions, with their defaults

    signature = inspect.signature(getattr(played, LAB_STORIES[name].function))
    defaults = {key: p.default for key, p in signature.parameters.items() if p.default is not p.empty}
    return {key: value for key, value in params.items() if key not in defaults or defaults[key] != value}


def _say_views(run: StoryRun) -> None:
    for part in run.parts:
        views = run.views(part)
        label = f"{run.name} ({part})" if part else run.name
        say(f"{label}: the client's view {_shown(views['client'])}, the server's {_shown(views['server'])}.")
