"""Planning a run: which notebooks, which parameters, validated before anything executes."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ParamsError

NOTEBOOK_RE = re.compile(r"^(\d\d)_[A-Za-z0-9_\-]+\.ipynb$")
TROUBLESHOOT = "08"
CLEANUP = "99"
SECRET_KEY_RE = re.compile(r"(token|password|passwd|secret|api[_-]?key|credential|authentication|authorization)s?$", re.I)
REFERENCE_KEYS = {"env", "secret_name", "secret_key", "token_env"}


@dataclass
class EnvPlan:
    """Everything one environment's run needs; JSON-serialisable so a child process can take it."""

    env: str
    run_dir: str
    notebooks_dir: str
    notebooks: list[str]                     # stems, in order, e.g. "00_preflight"
    troubleshoot: str | None                 # stem of 08_*, run last whatever happened
    parameters: dict[str, Any] = field(default_factory=dict)   # -p values
    declared: dict[str, list[str]] = field(default_factory=dict)  # notebook stem -> its parameter names
    overrides: list[str] = field(default_factory=list)          # "path=value" strings, passed as `overrides`
    lab_state_dir: str | None = None         # set when the env asks for a lab
    lab_args: list[str] = field(default_factory=list)
    token_env: str | None = None             # env var that carries the backend token, if any
    start_timeout: float = 120.0
    cell_timeout: float | None = 1200.0      # papermill execution_timeout per cell; None = no limit


def discover_notebooks(notebooks_dir: Path) -> list[Path]:
    """The runbook notebooks ``NN_name.ipynb`` of a folder, in order."""
    if not notebooks_dir.is_dir():
        raise ParamsError(f"notebooks folder {notebooks_dir} does not exist; pass --notebooks-dir")
    return sorted(p for p in notebooks_dir.iterdir() if NOTEBOOK_RE.match(p.name))


def select_notebooks(found: list[Path], spec: str | None, cleanup: bool) -> list[Path]:
    """Pick notebooks by a spec such as ``00-07`` or ``00,02,05-07`` (default: all but 99_cleanup)."""
    nums = {p.name[:2]: p for p in found}
    if not spec:
        chosen = [p for n, p in nums.items() if n != CLEANUP or cleanup]
    else:
        wanted: set[str] = set()
        singles: set[str] = set()
        for part in spec.split(","):
            part = part.strip()
            m = re.fullmatch(r"(\d{1,2})(?:-(\d{1,2}))?", part)
            if not m:
                raise ParamsError(f"--notebooks {spec!r}: {part!r} is not NN or NN-MM (e.g. 00-07 or 00,03,05-07)")
            lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
            wanted |= {f"{i:02d}" for i in range(lo, hi + 1)}
            if m.group(2) is None:
                singles.add(f"{lo:02d}")
        missing = sorted(n for n in singles if n not in nums)
        if missing:
            raise ParamsError(f"--notebooks {spec!r}: no notebook numbered {', '.join(missing)} in the notebooks folder")
        chosen = [p for n, p in nums.items() if n in wanted or (n == CLEANUP and cleanup)]
    if not chosen:
        raise ParamsError(f"--notebooks {spec!r} selects no notebook (found: {', '.join(p.stem for p in found) or 'none'})")
    return sorted(chosen)


def notebook_parameter_names(path: Path) -> list[str]:
    """Names assigned in a notebook's ``parameters`` cell, as papermill infers them."""
    import nbformat
    import papermill

    nb = nbformat.read(str(path), as_version=4)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "language": "python", "display_name": "Python 3"})
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / path.name
        nbformat.write(nb, str(copy))
        return list(papermill.inspect_notebook(str(copy)))


def parse_assignment(item: str, flag: str) -> tuple[str, str]:
    """Split ``name=value``; the name must be non-empty."""
    name, sep, value = item.partition("=")
    if not sep or not name.strip():
        raise ParamsError(f"{flag} {item!r}: expected name=value")
    return name.strip(), value


def parse_yaml_value(text: str, where: str) -> Any:
    """Parse a command-line value as YAML (``300`` → int, ``[a, b]`` → list, ``x`` → str)."""
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise ParamsError(f"{where}: value {text!r} is not valid YAML: {exc}") from None


def refuse_secret_paths(sets: list[str]) -> None:
    """Refuse ``--set`` paths that would carry a secret's value (only references are allowed)."""
    for item in sets:
        path, _ = parse_assignment(item, "--set")
        last = path.split(".")[-1]
        if last not in REFERENCE_KEYS and SECRET_KEY_RE.search(last):
            raise ParamsError(
                f"--set {path}=…: secret values are refused, because every parameter is written into the executed "
                f"notebooks; name the environment variable that holds it instead (e.g. --set {path}.env=MY_TOKEN_VAR)"
            )


def refuse_secret_values(values: list[str], token_env: str | None, what: str) -> None:
    """Refuse values equal to (or containing) the backend token that ``token_env`` holds."""
    secret = os.environ.get(token_env or "") if token_env else None
    if not secret or len(secret) < 4:
        return
    for v in values:
        if secret in v:
            raise ParamsError(
                f"{what}: a value contains the secret held in ${token_env}; secrets are never parameters, "
                f"they stay in the environment variable"
            )
