"""Loading a section from YAML plus ``AWS_ANOMALY__...`` environment overrides, and turning
pydantic's validation errors into one :class:`~aws_anomaly.errors.ConfigError` that names
the key as the user wrote it, the file, and the keys allowed there."""

from __future__ import annotations

import json
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ValidationError

from aws_anomaly.config.jobs import JobConfig
from aws_anomaly.config.service import Settings, _default_jobs
from aws_anomaly.errors import ConfigError

ENV_PREFIX = "AWS_ANOMALY__"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config file {path}: invalid YAML{where}: "
                          f"{getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level, "
                          f"got {type(data).__name__}")
    return data


def _env_value(raw: str) -> Any:
    # Plain strings go to pydantic, which converts them by field type ("8081" -> 8081); JSON
    # only for lists and maps, so a secret like "0123" is never mangled into a number.
    if raw[:1] in "[{":
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def _apply_env(data: dict[str, Any], prefix: str, environ: Mapping[str, str]) -> dict[str, Any]:
    for key in sorted(k for k in environ if k.startswith(prefix)):
        path = [p.lower() for p in key[len(prefix):].split("__")]
        if not all(path):
            raise ConfigError(f"environment variable {key}: empty key part; use "
                              f"{prefix}SECTION__KEY=value")
        node: Any = data
        for i, part in enumerate(path):
            last = i == len(path) - 1
            value = _env_value(environ[key]) if last else None
            if isinstance(node, list):
                if not part.isdigit() or int(part) > len(node):
                    raise ConfigError(f"environment variable {key}: {part!r} is not an index "
                                      f"into a list of {len(node)} item(s)")
                idx = int(part)
                if idx == len(node):
                    node.append({} if not last else value)
                if last:
                    node[idx] = value
                else:
                    if node[idx] is None:
                        node[idx] = {}
                    node = node[idx]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    if node.get(part) is None:
                        node[part] = [] if path[i + 1].isdigit() else {}
                    node = node[part]
            else:
                raise ConfigError(f"environment variable {key}: "
                                  f"{'.'.join(path[:i])} is a value, not a section")
    return data


def _locate(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[str, list[str] | None]:
    """The dotted key of a pydantic error location as the user wrote it (without the union
    tags pydantic inserts) and the field names allowed next to it, when known."""
    node: Any = model
    shown: list[str] = []
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(part, int) or node is None:
            shown.append(str(part))
            continue
        fields = getattr(node, "model_fields", None)
        if fields is None:
            # a discriminated union: this location part is the tag ("prometheus"), not a key
            options = typing.get_args(node)
            node = next((o for o in options
                         if "type" in getattr(o, "model_fields", {})
                         and o.model_fields["type"].default == part), None)
            if node is not None:
                continue
            shown.append(str(part))
            continue
        shown.append(str(part))
        if not last:
            node = _unwrap(fields[part].annotation) if part in fields else None
    fields = getattr(node, "model_fields", None)
    return ".".join(shown), (sorted(fields) if fields else None)


def _unwrap(tp: Any) -> Any:
    # Strip Optional / tuple[...] / list[...] / Annotated to reach a model or a union.
    while True:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is Annotated or (origin in (tuple, list) and args):
            tp = args[0]
        elif args and type(None) in args:
            rest = [a for a in args if a is not type(None)]
            tp = rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007
        else:
            return tp


def _config_error(exc: ValidationError, model: type[BaseModel], where: str) -> ConfigError:
    lines = []
    for err in exc.errors(include_url=False):
        key, allowed = _locate(model, tuple(err["loc"]))
        key = key or "(top level)"
        if err["type"] == "extra_forbidden":
            hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            lines.append(f"unknown key '{key}'{hint}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"'{key}': {msg}")
    head = f"{where}: " if len(lines) == 1 else f"{where}: {len(lines)} problems: "
    return ConfigError(head + "; ".join(lines))


def _validate(model: type[BaseModel], data: dict[str, Any], where: str,
              base_dir: Path | None) -> Any:
    try:
        return model.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise _config_error(exc, model, where) from None


def load_settings(path: str | Path | None = None, *,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Load :class:`Settings` from a YAML file (or the defaults when ``path`` is None), then
    apply ``AWS_ANOMALY__...`` environment overrides.

    Relative paths in the file are taken relative to the file's folder.

    Raises
    ------
    ConfigError
        Unreadable file, invalid YAML, unknown key, bad value or bad override, naming the key
        and the file.
    """
    environ = os.environ if environ is None else environ
    if path is None:
        data: dict[str, Any] = {}
        where, base = "default settings", None
    else:
        p = Path(path)
        data, where, base = _read_yaml(p), f"config file {p}", p.resolve().parent
    if "jobs" not in data and any(k.startswith(f"{ENV_PREFIX}JOBS__") for k in environ):
        # Overriding a default job's field keeps the default job (its name included).
        data["jobs"] = [job.model_dump(mode="json", exclude={"metrics"})
                        for job in _default_jobs()]
    data = _apply_env(data, ENV_PREFIX, environ)
    if any(k.startswith(ENV_PREFIX) for k in environ):
        where += f" (with {ENV_PREFIX}* environment overrides)"
    return _validate(Settings, data, where, base)


def load_job(path: str | Path, *, environ: Mapping[str, str] | None = None) -> JobConfig:
    """Load one :class:`JobConfig` from a YAML file (``aws-anomaly run --config job.yaml``).

    Overrides use ``AWS_ANOMALY__JOB__...`` (e.g. ``AWS_ANOMALY__JOB__INTERVAL=30s``).
    """
    environ = os.environ if environ is None else environ
    p = Path(path)
    prefix = f"{ENV_PREFIX}JOB__"
    data = _apply_env(_read_yaml(p), prefix, environ)
    where = f"config file {p}"
    if any(k.startswith(prefix) for k in environ):
        where += f" (with {prefix}* environment overrides)"
    return _validate(JobConfig, data, where, p.resolve().parent)
