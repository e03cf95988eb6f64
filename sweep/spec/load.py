"""From YAML to a :class:`StudySpec`: safe loading, size limits, and pydantic's errors
turned into ours (the key path and the value named)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from sweep.errors import SpecError, SpecErrors
from sweep.spec.base import MOVED_KEYS, SOURCES, TOP_LEVEL_KEYS, FieldError
from sweep.spec.searched import unsearchable
from sweep.spec.study import StudySpec

log = logging.getLogger("sweep")

# --------------------------------------------------------------------------- loading


def _is_union_tag(item: str) -> bool:
    return bool(item) and (
        item[0].isupper() or item[0] == "<" or item.startswith("function-")
        or item in ("float", "constrained-float", "str", "tagged-union"))


def _field_path(loc: tuple[Any, ...]) -> str:
    # pydantic puts union-member tags (e.g. 'CoefficientRange', 'float') into the location
    # of union errors; users know their own keys, so keep the keys and drop the tags.
    parts: list[str] = []
    for index, item in enumerate(loc):
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif _is_union_tag(item) or (index == 1 and loc[0] == "data" and item in SOURCES):
            continue  # (`data.synthetic.x`: the source's tag, not a key of the file)
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts)


def _errors_from_pydantic(error: ValidationError, *, single_objective: bool,
                          moved: dict[str, str]) -> SpecErrors:
    """``moved``: new key path -> the old one the file wrote, which errors then name."""
    seen: dict[str, SpecError] = {}
    for item in error.errors(include_url=False):
        field = _field_path(tuple(item["loc"]))
        if single_objective:
            field = re.sub(r"^objective\[0\]", "objective", field)
        kind = item["type"]
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required key is missing"
        elif kind == "literal_error":
            message = f"must be one of {item['ctx']['expected']}"
        elif kind == "union_tag_invalid":
            message = f"must be one of {item['ctx']['expected_tags']}"
            item = {**item, "input": item["ctx"]["tag"]}
        elif kind in ("model_type", "dict_type", "model_attributes_type"):
            message = "must be a mapping of keys"  # not pydantic's class names
        elif kind == "tuple_type" and item.get("input") is None:
            message = "required: a mapping such as {metric: val_accuracy, direction: maximize}"
        else:
            message = item["msg"].removeprefix("Value error, ")
        cause = (item.get("ctx") or {}).get("error")
        value = item.get("input")
        if isinstance(cause, FieldError) and cause.relative:
            field = f"{field}.{cause.field}" if field else cause.field
            message, value, kind = str(cause), cause.value, "field"
        elif isinstance(cause, FieldError):
            field, message = cause.field, str(cause)
        for new, old in moved.items():
            if field == new or field.startswith(new + "."):
                field, message = old + field[len(new):], message.replace(new, old)
        show = kind != "missing" and not (isinstance(value, dict) and kind != "extra_forbidden") \
            and f"(got {value!r})" not in message
        # Union members each report a failure for the same field; the first is enough.
        seen.setdefault(field, SpecError(field, message, value, show_value=show))
    return SpecErrors(list(seen.values()))


def parse_spec(data: Any) -> StudySpec:
    """Validate already-loaded data (a mapping) into a :class:`StudySpec`."""
    if not isinstance(data, dict):
        raise SpecError("", "a study file must be a mapping of the keys "
                        f"{', '.join(TOP_LEVEL_KEYS)}", type(data).__name__)
    misplaced = unsearchable(data)
    if misplaced:
        raise SpecErrors([SpecError(path, message, value)
                          for path, value, message in misplaced])
    used = moved_keys(data)
    try:
        return StudySpec.model_validate(_move(data, used))
    except ValidationError as error:
        # A single objective is written as a mapping: name its fields the same way.
        single = isinstance(data.get("objective"), dict)
        raise _errors_from_pydantic(error, single_objective=single, moved={
            MOVED_KEYS[old]: old for old in used}) from None


def moved_keys(data: dict[str, Any]) -> list[str]:
    """The keys of MOVED_KEYS that ``data`` still writes at their old place."""
    used = []
    for old in MOVED_KEYS:
        section, key = old.split(".")
        part = data.get(section)
        if isinstance(part, dict) and key in part:
            used.append(old)
    return used


def _move(data: dict[str, Any], used: list[str]) -> dict[str, Any]:
    """``data`` with the ``used`` old keys at their new place; a key written at both is
    refused (which of the two was meant is unknowable)."""
    moved = dict(data)
    for old in used:
        new = MOVED_KEYS[old]
        (section, key), (new_section, new_key) = old.split("."), new.split(".")
        target = moved.get(new_section)
        target = {} if target is None else target
        if not isinstance(target, dict):
            continue  # the section itself is refused, by its own name
        if new_key in target:
            raise SpecError(old, f"is also given as {new}, its new name: keep only {new}",
                            moved[section][key])
        moved[new_section] = {**target, new_key: moved[section][key]}
        moved[section] = {k: v for k, v in moved[section].items() if k != key}
    return moved


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study file; every problem is a :class:`SpecError`."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:  # refused before parsing: 5 MB of YAML took 45 s
            raise SpecError("STUDY_FILE", f"is {size:,} bytes; a study file is at most "
                            f"{MAX_SPEC_BYTES // 1024} KB (data goes in files it names)",
                            str(path))
        text = path.read_text()
    except OSError as error:
        raise SpecError("STUDY_FILE", f"cannot read: {error.strerror}", str(path)) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no Python tags
    except yaml.YAMLError as error:
        raise SpecError("STUDY_FILE", f"not valid YAML: {error}", str(path),
                        show_value=False) from None
    if _nodes(data, MAX_SPEC_NODES) > MAX_SPEC_NODES:
        aliased = " once its YAML aliases are expanded" if _ANCHOR.search(text) else ""
        raise SpecError("STUDY_FILE", f"holds more than {MAX_SPEC_NODES} values{aliased}",
                        str(path))
    spec = parse_spec(data)
    used = moved_keys(data) if isinstance(data, dict) else []
    if used:
        log.warning("%s: %s; the old keys still load, and go in a later release", path.name,
                    ", ".join(f"{old} is now {MOVED_KEYS[old]}" for old in used))
    return spec


# A study file has a few hundred values; aliases can make a small file expand into
# millions (and the spec is stored in the database and in MLflow).
MAX_SPEC_NODES = 10_000
MAX_SPEC_BYTES = 256 * 1024
_ANCHOR = re.compile(r"(?:^|[\s\[{,:-])&[^\s,\[\]{}]+")


def _nodes(data: Any, limit: int) -> int:
    """How many values ``data`` holds once aliases are expanded, counting up to ``limit``."""
    count, stack = 0, [data]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe YAML (libyaml's parser where PyYAML has it: 10x faster) that refuses a key
    given twice in one mapping (YAML keeps the last one silently, so a typo'd override
    would go unnoticed). A merge key (``<<: *defaults``) is YAML 1.1's: the keys it
    brings in may be overridden by the mapping's own."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                line = key_node.start_mark.line + 1
                raise SpecError("STUDY_FILE", f"key {key!r} appears twice in one mapping "
                                f"(line {line})", key)
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(self, node, deep=deep)
