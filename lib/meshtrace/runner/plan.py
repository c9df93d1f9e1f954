"""Planning a run: which notebooks, which parameters, which lab, validated before anything executes.

Example::

    runs_dir, nb_dir, envs, base = plan_run(args)      # ParamsError on any mistake, before anything runs
    plans = make_plans(args, run_dir, envs, base)      # one EnvPlan per environment
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ParamsError
from .lab import lab_running

NOTEBOOK_RE = re.compile(r"^(\d\d)_[A-Za-z0-9_\-]+\.ipynb$")
TROUBLESHOOT = "08"
CLEANUP = "99"
SECRET_KEY_RE = re.compile(r"(token|password|passwd|secret|api[_-]?key|credential|authentication|authorization)s?$", re.I)
REFERENCE_KEYS = {"env", "secret_name", "secret_key", "token_env"}
UNKNOWN = object()   # a parameter default that is not a Python literal


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
    lab_shared: bool = False                 # the lab was already running there (used under a lock, left running)
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


def notebook_parameters(path: Path) -> dict[str, Any]:
    """A notebook's ``parameters`` cell as papermill infers it: name → default value.

    The default is papermill's source text read as a Python literal (``180`` → 180, ``None`` → None); a
    default that is not a literal (an expression) becomes :data:`UNKNOWN` and then accepts any value.
    """
    import nbformat
    import papermill

    nb = nbformat.read(str(path), as_version=4)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "language": "python", "display_name": "Python 3"})
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / path.name
        nbformat.write(nb, str(copy))
        inferred = papermill.inspect_notebook(str(copy))
    out: dict[str, Any] = {}
    for name, info in inferred.items():
        try:
            out[name] = ast.literal_eval(str(info.get("default", "")))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            out[name] = UNKNOWN
    return out


def notebook_parameter_names(path: Path) -> list[str]:
    """Names assigned in a notebook's ``parameters`` cell, as papermill infers them."""
    return list(notebook_parameters(path))


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


# ---------------------------------------------------------------- -p values
@dataclass(frozen=True)
class Domain:
    """What a parameter's values mean beyond their type: a count, a timeout, a percentage or a choice."""

    what: str                               # e.g. "a count"
    minimum: float | None = None
    exclusive: bool = False                 # the minimum itself is not allowed (counts start at 1)
    maximum: float | None = None
    integer: bool = False                   # whole numbers only
    choices: tuple[Any, ...] = ()           # when set: the only allowed values
    # None is always allowed: a None default means "the params' value", and a non-None default's type
    # check has refused None already

    @property
    def allowed(self) -> str:
        """The domain in words: ``a whole number greater than 0``."""
        if self.choices:
            return "one of " + ", ".join(map(_show, self.choices))
        words = "a whole number" if self.integer else "a number"
        if self.minimum is not None and self.maximum is not None:
            return f"{words} from {self.minimum:g} to {self.maximum:g}"
        if self.minimum is not None:
            return f"{words} " + (f"greater than {self.minimum:g}" if self.exclusive else f"of {self.minimum:g} or more")
        return words

    def admits(self, value: Any) -> bool:
        """Whether ``value`` is inside the domain."""
        if value is None:
            return True
        if self.choices:
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, int if self.integer else (int, float)):
            return False
        if self.minimum is not None and (value < self.minimum or (self.exclusive and value == self.minimum)):
            return False
        return self.maximum is None or value <= self.maximum


COUNT = Domain("a count", minimum=0, exclusive=True, integer=True)
TIMEOUT = Domain("a timeout in seconds", minimum=0)
PERCENT = Domain("a percentage", minimum=0, maximum=100)


def model_domain(what: str, model: Any, name: str) -> Domain:
    """The domain of a params field, from its pydantic bounds (``ge``/``gt``/``le``/``lt``), so that ``-p`` and
    params agree: ``model_domain("a count", TrafficParams, "concurrency").allowed`` → ``a whole number from 1 to 256``.
    """
    info = model.model_fields[name]
    lo = hi = None
    exclusive = False
    for m in info.metadata:
        if getattr(m, "ge", None) is not None:
            lo = m.ge
        if getattr(m, "gt", None) is not None:
            lo, exclusive = m.gt, True
        if getattr(m, "le", None) is not None:
            hi = m.le
        if getattr(m, "lt", None) is not None:
            hi = m.lt   # no lt bound is used by params today; treated as inclusive
    return Domain(what, minimum=lo, exclusive=exclusive, maximum=hi, integer=info.annotation is int)


def _params_domains() -> list[tuple[re.Pattern[str], Domain]]:
    from ..params_models import TelemetryParams, TrafficParams

    return [(re.compile("requests"), model_domain("a count (as traffic.requests in params)", TrafficParams, "requests")),
            (re.compile("concurrency"),
             model_domain("a count (as traffic.concurrency in params)", TrafficParams, "concurrency")),
            (re.compile("sampling"),
             model_domain("a percentage (as telemetry.sampling in params)", TelemetryParams, "sampling"))]


# Parameter name (full match) → its domain, after the notebooks' parameters cells and how the stages use them;
# a parameter that stands for a params field takes that field's bounds (first match wins).
# A new knob named like these (``*_timeout``, ``max_*``, ``*_percent``) gets the same rule without another entry.
DOMAINS: list[tuple[re.Pattern[str], Domain]] = [
    *_params_domains(),
    (re.compile(r"(.+_)?timeout"), TIMEOUT),
    (re.compile(r"requests|concurrency|max_.+|.+_count"), COUNT),
    (re.compile(r".+_percent(age)?|sampling"), PERCENT),
    (re.compile(r"existing_install"),   # the modes of stages.istio.MODES
     Domain("the existing-install mode", choices=("refuse", "merge", "replace"))),
]
TYPE_RULES = {bool: "true or false (a YAML boolean)", int: "a whole number", float: "a number",
              str: "a string", list: "a YAML list such as [a, b]", dict: "a YAML mapping such as {a: 1}"}


def _show(value: Any) -> str:
    """A value as the command line would spell it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else str(value)


def _type_of(default: Any) -> type | None:
    """The type a default asks for (None: anything goes)."""
    if default is None or default is UNKNOWN:
        return None
    if isinstance(default, tuple):
        return list
    return next((t for t in TYPE_RULES if type(default) is t), None)


def _fits(kind: type, value: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def check_parameter_value(name: str, raw: str, value: Any, defaults: dict[str, dict[str, Any]]) -> Any:
    """Validate one ``-p name=value`` against every notebook that declares ``name``; returns the value to pass.

    ``defaults`` is notebook stem → {parameter: default} (see :func:`notebook_parameters`). The value's type must
    fit each declaring notebook's default (a None default takes anything; a str default takes a scalar as the
    text typed, so ``-p tag=1.20`` stays ``"1.20"``), and a known domain (counts, timeouts, percentages, choices)
    must hold. Raises ParamsError naming the parameter, the notebooks, the value and what is allowed.
    """
    owners = sorted(stem for stem, params in defaults.items() if name in params)
    where = f"-p {name}={raw}: {name} is declared by {', '.join(owners)}"
    kinds = {stem: _type_of(defaults[stem][name]) for stem in owners}
    typed = {k for k in kinds.values() if k is not None}
    if typed == {str} and value is not None and not isinstance(value, (str, list, dict)):
        value = raw.strip()      # a str parameter takes the scalar as typed
    for stem, kind in kinds.items():
        if kind is not None and not _fits(kind, value):
            got = f" ({type(value).__name__})" if value is not None else ""
            raise ParamsError(f"{where}; {stem} has default {_show(defaults[stem][name])}, so the value must be "
                              f"{TYPE_RULES[kind]}, not {_show(value)}{got}")
    domain = next((d for pattern, d in DOMAINS if pattern.fullmatch(name)), None)
    if domain is not None and not domain.admits(value):
        keep = " (or null for the notebook's default)" if None in kinds.values() else ""
        raise ParamsError(f"{where}; {_show(value)} is not allowed: {domain.what} must be {domain.allowed}{keep}")
    return value


# ---------------------------------------------------------------- the run's plan, from the command line
RESERVED = {"env", "overrides", "run_dir"}  # set by the runner itself


def _default_root() -> Path:
    """The repository root: the nearest folder upward from here that has ``params/``, else the current one."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[3]):
        for d in (base, *base.parents):
            if (d / "params").is_dir():
                return d
    return Path.cwd()


def plan_run(args: argparse.Namespace) -> tuple[Path, Path, list[dict[str, Any]], dict[str, Any]]:
    """Validate everything the run needs before anything executes; raises ParamsError on a mistake."""
    from ..params import load_params

    root = (args.root or _default_root()).resolve()
    nb_dir = (args.notebooks_dir or root / "notebooks").resolve()
    runs_dir = (args.runs_dir or root / "runs").resolve()
    envs = args.envs or ["lab"]
    if len(set(envs)) != len(envs):
        raise ParamsError(f"--env given twice: {', '.join(envs)}")
    if args.jobs < 1:
        raise ParamsError("--jobs must be 1 or more")
    found = discover_notebooks(nb_dir)
    chosen = select_notebooks(found, args.notebooks, args.cleanup)
    trouble = next((p for p in found if p.name.startswith(TROUBLESHOOT + "_")), None)
    if args.no_troubleshoot:
        trouble = None
    defaults = {p.stem: notebook_parameters(p) for p in {*chosen, *([trouble] if trouble else [])}}
    declared = {stem: list(params) for stem, params in defaults.items()}
    known = set().union(*declared.values()) if declared else set()
    raws: dict[str, str] = {}
    for item in args.parameter:
        name, raw = parse_assignment(item, "-p")
        if name in RESERVED:
            raise ParamsError(f"-p {name}=…: the runner sets {name} itself; use --env for the environment, "
                              "--set for params overrides and --runs-dir for where runs go")
        if name not in known:
            raise ParamsError(
                f"-p {name}: no selected notebook has a parameter named {name!r}; "
                f"known parameters: {', '.join(sorted(known - RESERVED)) or 'none'}"
            )
        raws[name] = raw
    for item in args.sets:
        parse_assignment(item, "--set")
    refuse_secret_paths(args.sets)
    loaded = {}
    for env in envs:
        params = load_params(env, list(args.sets), root=root)
        token = getattr(getattr(params.backend, "token", None), "env", None) if params.backend else None
        refuse_secret_values(list(args.sets), token, "--set")
        refuse_secret_values([i.partition("=")[2] for i in args.parameter], token, "-p")
        loaded[env] = params
    # values after the secret check, so that an error message never echoes a secret
    parameters = {name: check_parameter_value(name, raw, parse_yaml_value(raw, f"-p {name}"), defaults)
                  for name, raw in raws.items()}
    base = {"root": root, "nb_dir": nb_dir, "chosen": [p.stem for p in chosen],
            "trouble": trouble.stem if trouble else None, "declared": declared, "parameters": parameters}
    return runs_dir, nb_dir, [{"env": e, "params": loaded[e]} for e in envs], base


def make_plans(args: argparse.Namespace, run_dir: Path, envs: list[dict[str, Any]], base: dict[str, Any]) -> list[EnvPlan]:
    """One EnvPlan per environment.

    A lab environment uses the lab already running at its params' state dir (shared: the run takes its lock),
    else the runner starts a lab of its own in the run folder (``<run>/labs/<env>``), so that concurrent runs and
    parallel environments never share one. ``-p existing_install=…`` is also set as ``istio.existing_install``, so
    that 00's foreign-install check and 02 agree.
    """
    from ..params import load_params

    plans = []
    mode = base["parameters"].get("existing_install")
    for item in envs:
        env, params = item["env"], item["params"]
        overrides = list(args.sets) + ([f"istio.existing_install={mode}"] if mode else [])
        state_dir = lab_args = None
        shared = False
        if params.lab is not None:
            lab_args = list(params.lab.args)
            shared_dir = str(params.resolve_path(params.lab.state_dir))
            if lab_running(shared_dir):
                state_dir, shared = shared_dir, True
            else:
                sd = run_dir / "labs" / env
                overrides += [f"cluster.kubeconfig={sd}/kubeconfig", f"cluster.istioctl={sd}/bin/istioctl",
                              f"lab.state_dir={sd}"]
                state_dir = str(sd)
        if overrides != list(args.sets):
            load_params(env, overrides, root=base["root"])
        token = params.backend.token.env if params.backend and params.backend.token else None
        plans.append(EnvPlan(
            env=env, run_dir=str(run_dir), notebooks_dir=str(base["nb_dir"]), notebooks=base["chosen"],
            troubleshoot=base["trouble"], parameters=base["parameters"], declared=base["declared"],
            overrides=overrides, lab_state_dir=state_dir, lab_args=lab_args or [], token_env=token,
            cell_timeout=args.cell_timeout or None, lab_shared=shared,
        ))
    return plans
