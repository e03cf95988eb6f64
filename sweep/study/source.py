"""The git commit of the repository a study file lives in, recorded on the study by
`sweep create`/`sweep run` (workers may run where that folder is not) and by every trial
run with the rest of its environment (sweep.training.environment)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from sweep.keys import GIT_COMMIT

if TYPE_CHECKING:
    import optuna


def git_commit(study_file: str | Path) -> str | None:
    """``<sha>`` of HEAD, ``<sha>+dirty`` when tracked files differ from it, None outside a
    git repository (or without git)."""
    folder = Path(study_file).resolve().parent

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                              text=True, timeout=10, check=False)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return None
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    sha = head.stdout.strip()
    return f"{sha}+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else sha


def record_commit(study: optuna.Study, commit: str | None) -> None:
    """The study's commit: the one its file was at when it was last created or resumed."""
    if commit is not None and study.user_attrs.get(GIT_COMMIT) != commit:
        study.set_user_attr(GIT_COMMIT, commit)
