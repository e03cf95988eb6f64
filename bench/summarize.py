"""Write the figures section of bench/README.md from bench/results/*.json, so that the
README always shows what the last run measured (met or missed), with its commit, date and
machine. Run by bench/run_all.py; on its own: `.venv/bin/python bench/summarize.py`.
"""

from __future__ import annotations

import json
from typing import Any

from _common import BENCH, RESULTS, fmt

BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"
ORDER = ("startup", "overhead", "peer", "coordination", "drift", "logging_cost",
         "checkpoint_cost", "pruning",
         "noise_stop", "selection", "demo", "workers", "waiting", "images", "gpu", "scale_trials",
         "many_workers")


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _commit(doc: dict[str, Any]) -> str:
    if not doc.get("dirty"):
        return f"`{doc['commit']}`"
    return (f"`{doc['commit']}` + uncommitted changes to {', '.join(doc['dirty_paths'])} "
            f"(diff sha256 `{doc['diff_sha256']}`)")


def _value(value: Any, unit: str = "") -> str:
    if value is None:
        return "not measured"
    if isinstance(value, str):
        return value
    small = isinstance(value, float) and 0 < abs(value) < 0.001
    text = f"{value:.2e}" if small else fmt(value)
    return f"{text} {unit}".strip()


def _verdict(t: dict[str, Any]) -> str:
    verdict = t.get("verdict") or ("met" if t["met"] else "missed")
    if verdict in ("met", "within noise"):
        return verdict
    return "**MISSED**" if verdict == "missed" else f"**{verdict}**"


def _kept(previous: str, name: str) -> tuple[list[str], list[str]]:
    """The table rows and the figures paragraph of benchmark ``name`` in the figures
    section as it was: kept when this machine has no result of it (bench/results/ is not
    versioned, and one benchmark may be run on its own), with their own date and commit."""
    rows = [line for line in previous.splitlines() if line.startswith(f"| {name} |")
            or line.startswith(f"| {name} (quick) |")]
    block: list[str] = []
    for line in previous.splitlines():
        if line.startswith(f"- **{name}** ("):
            block = [line]
        elif block and line.startswith("  "):
            block.append(line)
        elif block:
            break
    return rows, block


OWN = " Machine (run on their own since: "
SINCE = "Benchmarks run on their own since: "


def render(previous: str = "") -> str:
    docs = {name: doc for name in ORDER if (doc := _load(name)) is not None}
    run = _load("run_all")
    lines = []
    if not docs and not previous.strip():
        return "No results yet: run `make bench`.\n"
    kept = {name: _kept(previous, name) for name in ORDER if name not in docs}
    header = [line for line in previous.splitlines()
              if line.startswith(("Machine:", "Last `make bench`"))]
    some_kept = any(rows or block for rows, block in kept.values())
    if docs:
        machine = next(iter(docs.values()))["machine"]
        here = (f"{machine['cpu_model']}, {machine['cpu_count']} CPU cores "
                f"({machine.get('cpus_usable')} usable), {machine['platform']}; Python "
                f"{machine['python']}, TensorFlow {machine['tensorflow']}, Keras "
                f"{machine['keras']}, Optuna {machine['optuna']}, MLflow {machine['mlflow']}.")
        old = next((line for line in header if line.startswith("Machine:")), None)
        if some_kept and run is None and old is not None:
            earlier, *groups = old.removeprefix("Machine: ").removeprefix(
                "(the run below) ").split(OWN)
            # Earlier benchmarks run on their own keep their machine, less those run now.
            kept_groups = []
            for group in groups:
                names, machine = group.split("): ", 1)
                left = [n for n in names.split(", ") if n not in docs]
                if left:
                    kept_groups.append(f"{OWN}{', '.join(left)}): {machine}")
            lines.append(f"Machine: (the run below) {earlier}{''.join(kept_groups)}{OWN}"
                         f"{', '.join(docs)}): {here}")
        else:
            lines.append(f"Machine: {here}")
    else:
        lines += header[:1]
    if run is not None:
        state = "quick smoke run" if run["quick"] else "full run"
        failed = [r["benchmark"] for r in run["runs"] if r["exit_code"]]
        lines.append("")
        started = run.get("commit_at_start")
        since = f"started at commit `{started}`, ended at " if started and started != \
            run["commit"] else ""
        lines.append(f"Last `make bench` ({state}): {run['date']}, {since}commit {_commit(run)}, "
                     f"**{run['wall_seconds'] / 60:.1f} min** wall in all ("
                     + ", ".join(f"{r['benchmark']} {r['seconds']:.0f} s" for r in run["runs"])
                     + ")" + (f"; FAILED: {', '.join(failed)}" if failed else "") + ".")
    elif len(header) > 1:
        lines += ["", header[1]]
    if some_kept and docs:
        # Those said to have run on their own earlier still have, unless a full run (whose
        # figures are all here) came since or they ran again now.
        said = next((line for line in previous.splitlines() if line.startswith(SINCE)), "")
        earlier_own = [] if run is not None else [
            n for n in said.removeprefix(SINCE).split(" (their")[0].split(", ") if n in kept]
        lines += ["", SINCE + ", ".join([*earlier_own, *docs]) + " (their "
                  "date and commit below); the others' figures are from the run above."]
    if any(doc["quick"] for doc in docs.values()):
        lines += ["", "**Some figures below come from `--quick` smoke runs and mean nothing.**"]
    lines += ["", "| benchmark | target | measured | noise (±) | limit | result |",
              "| --- | --- | --- | --- | --- | --- |"]
    for name in ORDER:
        if name not in docs:
            lines += kept[name][0]
            continue
        doc = docs[name]
        for t in doc["targets"]:
            noise = t.get("noise")
            title = t["name"].replace("|", "\\|")  # a cell of a Markdown table
            lines.append(f"| {name}{' (quick)' if doc['quick'] else ''} | {title} | "
                         f"{_value(t['value'], t['unit'])} | "
                         f"{'–' if noise is None else _value(noise)} | {t['op']} "
                         f"{_value(t['limit'], t['unit'])} | {_verdict(t)} |")
    lines += ["", "Each benchmark's other figures (medians over its repeats; ratios measured "
              "within the same run):", ""]
    for name in ORDER:
        if name not in docs:
            lines += kept[name][1]
            continue
        doc = docs[name]
        load = doc["machine"]
        lines.append(f"- **{name}** ({doc['date']}, commit {_commit(doc)}, 1-minute load "
                     f"average {load['loadavg_at_start'][0]:.1f} at start, "
                     f"{load['loadavg_at_end'][0]:.1f} at end, {doc['wall_seconds']:.0f} s):")
        figures = {**doc["medians"], **doc["ratios"]}
        lines.append("  " + "; ".join(f"{key} {_value(value)}" for key, value in figures.items())
                     + ".")
        for note in doc.get("notes", []):
            lines.append(f"  Note: {note}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    readme = BENCH / "README.md"
    text = readme.read_text() if readme.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text += f"\n## Latest figures\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    previous, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{render(previous)}{END}{tail}")
    print(f"updated {readme}")


if __name__ == "__main__":
    main()
