"""Runs one plugin in a separate process: ``python -P .../plugin_runner.py DIR``.

This module imports neither Django nor closedloop's settings, so the plugin runs without
a database connection, settings or secrets in its environment. ``DIR`` holds:

- ``spec.json``: ``{"path", "is_package", "class_name", "parameters"}``
- ``input.arrow``: the input frame (Arrow IPC)

and receives ``output.arrow`` (the frame ``run()`` returned) or ``error.json``
(``{"error": "...", "traceback": "..."}``) with exit code 1.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import traceback
from pathlib import Path
from typing import Any


def load_plugin_class(path: Path, is_package: bool, class_name: str, module_name: str) -> Any:
    location = path / "__init__.py" if is_package else path
    spec = importlib.util.spec_from_file_location(
        module_name,
        location,
        submodule_search_locations=[str(path)] if is_package else None,
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {location}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return getattr(module, class_name)


def main(workdir: str) -> int:
    import polars as pl

    folder = Path(workdir)
    try:
        spec = json.loads((folder / "spec.json").read_text())
        frame = pl.read_ipc(io.BytesIO((folder / "input.arrow").read_bytes()))
        cls = load_plugin_class(
            Path(spec["path"]), spec["is_package"], spec["class_name"], "closedloop_plugin_run"
        )
        result = cls().run(frame, dict(spec["parameters"]))
        if not isinstance(result, pl.DataFrame):
            raise TypeError(f"run() returned {type(result).__name__}, not a polars DataFrame")
        result.write_ipc(folder / "output.arrow")
    except BaseException as exc:  # everything goes back to the parent as a message
        (folder / "error.json").write_text(
            json.dumps(
                {
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(limit=8)[-4000:],
                }
            )
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
