"""Where the wizard keeps parsed data between its steps: a folder per upload under
``MEDIA_ROOT/feedback-staging/<account>/<token>/`` holding the typed frame (Parquet, with
the file's row numbers) and the wizard's state (JSON). The session keeps only the token.
Folders older than a day are removed when a new upload is staged.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from django.conf import settings
from django.http import Http404

from closedloop.feedback.dataops.sources import ParsedTable

ROW = "__row"
MAX_AGE = 24 * 3600
_TOKEN_CHARS = set("0123456789abcdef-")


def staging_root() -> Path:
    return Path(settings.MEDIA_ROOT) / "feedback-staging"


def _folder(account_id: int, token: Any) -> Path:
    token = str(token)
    if not token or set(token) - _TOKEN_CHARS:
        raise Http404
    return staging_root() / str(int(account_id)) / token


@dataclass
class Staged:
    token: str
    parsed: ParsedTable
    state: dict[str, Any]
    folder: Path

    def save_state(self, **changes: Any) -> None:
        self.state.update(changes)
        (self.folder / "state.json").write_text(json.dumps(self.state, default=str))

    def drop_data(self) -> None:
        """Remove the data once it is written (the state stays for the result page)."""
        (self.folder / "data.parquet").unlink(missing_ok=True)


def stage(
    parsed: ParsedTable,
    *,
    account_id: int,
    workflow_id: int,
    user_id: int,
    source: dict[str, Any] | None = None,
) -> str:
    cleanup(account_id)
    token = str(uuid.uuid4())
    folder = _folder(account_id, token)
    folder.mkdir(parents=True, exist_ok=True)
    rows = parsed.row_numbers or list(range(2, parsed.nrows + 2))
    parsed.frame.with_columns(pl.Series(ROW, rows, dtype=pl.Int64)).write_parquet(
        folder / "data.parquet"
    )
    state = {
        "workflow": workflow_id,
        "user": user_id,
        "types": parsed.types,
        "source": parsed.source,
        "notes": parsed.notes,
        "origin": source or {},
        "created": time.time(),
    }
    (folder / "state.json").write_text(json.dumps(state, default=str))
    return token


def load_state(token: Any, *, account_id: int, workflow_id: int, user_id: int) -> dict[str, Any]:
    """The wizard state of an upload, only for its user and workflow (else 404)."""
    folder = _folder(account_id, token)
    try:
        state: dict[str, Any] = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        raise Http404 from None
    if state.get("workflow") != workflow_id or state.get("user") != user_id:
        raise Http404
    return state


def load(token: Any, *, account_id: int, workflow_id: int, user_id: int) -> Staged:
    """The staged upload, only for the user and workflow it was made for (else 404)."""
    state = load_state(token, account_id=account_id, workflow_id=workflow_id, user_id=user_id)
    folder = _folder(account_id, token)
    try:
        frame = pl.read_parquet(folder / "data.parquet")
    except (OSError, ValueError):
        raise Http404 from None
    rows = frame.get_column(ROW).to_list()
    parsed = ParsedTable(frame.drop(ROW), state["types"], state["source"], state["notes"], rows)
    return Staged(str(token), parsed, state, folder)


def discard(token: Any, *, account_id: int) -> None:
    shutil.rmtree(_folder(account_id, token), ignore_errors=True)


def cleanup(account_id: int, max_age: int = MAX_AGE) -> None:
    root = staging_root() / str(int(account_id))
    if not root.is_dir():
        return
    limit = time.time() - max_age
    for folder in root.iterdir():
        try:
            if folder.stat().st_mtime < limit:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue
