"""The lab stories' reference captures in ``captures/lab/``: both views of each story,
annotated (a comment on every packet, as ``tcpchatx annotate --comments`` writes), for students whose machine has no namespaces (macOS, Windows without WSL), what the
story recorded beside them (``NAME.json``: the kernel's TCP_INFO, the router's queue,
the relay's report, with the views as file names), and an index that says what each
shows and why each resend happened.

``tcpchatx references --lab`` plays every story (:data:`tcpchatx.scenarios.lab.LAB_STORIES`)
in the lab and writes them here.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..analysis import write_annotated
from ..analysis.why import explain
from ..scenarios.lab import LAB_STORIES
from . import run_in_lab

LAB_CAPTURES = Path(__file__).resolve().parents[2] / "captures" / "lab"


def view_pairs(outcome) -> list[dict[str, str]]:
    """Every {"client": path, "server": path} pair in a story's outcome, in order."""
    if not isinstance(outcome, dict):
        return []
    if "views" in outcome:
        return [outcome["views"]]
    return [views for value in outcome.values() for views in view_pairs(value)]


def with_file_names(outcome):
    """*outcome* with each capture path replaced by its file name (the folder moves)."""
    if isinstance(outcome, dict):
        return {key: ({side: Path(path).name for side, path in value.items()} if key == "views"
                      else with_file_names(value)) for key, value in outcome.items()}
    if isinstance(outcome, list):
        return [with_file_names(value) for value in outcome]
    return outcome


def with_folder(outcome, folder: Path):
    """The other way: each capture's file name made a path in *folder*."""
    if isinstance(outcome, dict):
        return {key: ({side: str(folder / name) for side, name in value.items()} if key == "views"
                      else with_folder(value, folder)) for key, value in outcome.items()}
    if isinstance(outcome, list):
        return [with_folder(value, folder) for value in outcome]
    return outcome


def regenerate(folder: Path = LAB_CAPTURES, names: list[str] | None = None, progress=print) -> list[Path]:
    """Play the stories named (all by default) into *folder*; write its README.md index."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name in names or list(LAB_STORIES):
        story = LAB_STORIES[name]
        progress(f"{name}: {story.summary} ...")
        outcome = run_in_lab(f"tcpchatx.netlab.stories:{story.function}", {"out_dir": str(folder)})
        for views in view_pairs(outcome):
            for path in views.values():
                write_annotated(path, path)  # each packet's comment says what it is (and Wireshark's marks)
                written.append(Path(path))
        (folder / f"{name}.json").write_text(json.dumps(with_file_names(outcome), separators=(",", ":")) + "\n")
    _write_index(folder)
    return written


def _write_index(folder: Path) -> None:
    lines = ["# The lab stories' reference captures",
             "",
             "Each story across the lab's client - router - server network, captured at both ends",
             "(`NAME-client-view.pcapng` on the client's link, `NAME-server-view.pcapng` on the",
             "server's), and what the story recorded beside them in `NAME.json` (the kernel's",
             "TCP_INFO, the router's queue, the relay's report). Regenerate with",
             "`tcpchatx references --lab`; play one yourself with `tcpchatx scenario NAME` (Linux),",
             "or `lab.story(NAME)` in a notebook. Why each resend happened (`tcpchatx.analysis.why`):",
             ""]
    for name, story in LAB_STORIES.items():
        clients = sorted(folder.glob(f"{name}*-client-view.pcapng"))
        if not clients:
            continue
        lines += [f"## {name}", "", story.summary[0].upper() + story.summary[1:] + ".", ""]
        for client in clients:
            server = client.with_name(client.name.replace("-client-view", "-server-view"))
            whys = explain(client, server) if server.exists() else []
            lines.append(f"- `{client.name}` and `{server.name}`: {len(whys)} resend(s)")
            lines += [f"  - {why.sentence()}" for why in whys[:5]]
            if len(whys) > 5:
                lines.append(f"  - ... and {len(whys) - 5} more")
        lines.append("")
    (folder / "README.md").write_text("\n".join(lines))
