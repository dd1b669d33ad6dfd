#!/usr/bin/env python3
"""Validates the OCSF events `sessionlake ocsf` wrote against the OCSF 1.1.0 class schema.

    validate.py SCHEMA_JSON OUT_DIR SOURCE

SCHEMA_JSON is process_activity-1.1.0.json (beside this file: the class, the objects the
events use and every type, from the compiled OCSF 1.1.0 schema; see its "_provenance"). Every
Parquet file under OUT_DIR/ext/SOURCE/ is read back with pyarrow, and every record checked:
each attribute is one the schema defines for its class or object, of its type (objects
recursively, enums by their values), every required attribute is there, the objects'
"at least one of" constraints hold, the class and type ids agree, and the record sits in the
Security Lake partition of its region, account and day. Prints a JSON summary on stdout;
exits 1 when anything is wrong.
"""

import datetime
import json
import pathlib
import sys

import pyarrow.parquet

INT32 = range(-(2**31), 2**31)
INT64 = range(-(2**63), 2**63)


def base_type(types, name):
    """Follows a type to the primitive it is made of (username_t -> string_t)."""
    while types.get(name, {}).get("type"):
        name = types[name]["type"]
    return name


def check_value(schema, attribute, value, path, errors):
    if attribute.get("is_array"):
        if not isinstance(value, list):
            errors.append(f"{path}: an array expected, got {value!r}")
            return
        for index, item in enumerate(value):
            check_scalar(schema, attribute, item, f"{path}[{index}]", errors)
        return
    check_scalar(schema, attribute, value, path, errors)


def check_scalar(schema, attribute, value, path, errors):
    kind = attribute["type"]
    # An object attribute's type names the object (compiled schemas); `object_t` with an
    # `object_type` in source form.
    name = attribute.get("object_type") if kind == "object_t" else kind
    if name in schema["objects"] or name == "object":
        if name == "object":  # `unmapped`: any object
            if not isinstance(value, dict):
                errors.append(f"{path}: an object expected, got {value!r}")
            return
        check_object(schema, schema["objects"][name], value, path, errors)
        return
    if kind not in schema["types"]:
        errors.append(f"{path}: type {kind} is neither a type nor an object this schema holds")
        return
    base = base_type(schema["types"], kind)
    ok = {
        "string_t": isinstance(value, str),
        "integer_t": isinstance(value, int) and not isinstance(value, bool) and value in INT32,
        "long_t": isinstance(value, int) and not isinstance(value, bool) and value in INT64,
        "boolean_t": isinstance(value, bool),
        "float_t": isinstance(value, (int, float)) and not isinstance(value, bool),
        "json_t": True,
    }.get(base)
    if not ok:
        errors.append(f"{path}: {value!r} is not a {kind} ({base})")
        return
    enum = attribute.get("enum")
    if enum and str(value) not in enum:
        errors.append(f"{path}: {value!r} is not one of {sorted(enum)}")


def check_object(schema, definition, value, path, errors):
    if not isinstance(value, dict):
        errors.append(f"{path}: an object expected, got {value!r}")
        return
    attributes = definition["attributes"]
    present = {name for name, item in value.items() if item is not None}
    for name in sorted(present):
        if name not in attributes:
            errors.append(f"{path}.{name}: not an attribute of {definition.get('name', path)}")
            continue
        check_value(schema, attributes[name], value[name], f"{path}.{name}", errors)
    for name, attribute in attributes.items():
        if attribute.get("requirement") == "required" and name not in present:
            errors.append(f"{path}.{name}: required, missing")
    for rule, names in (definition.get("constraints") or {}).items():
        if rule == "at_least_one" and not present.intersection(names):
            errors.append(f"{path}: needs at least one of {names}")
        if rule == "just_one" and len(present.intersection(names)) != 1:
            errors.append(f"{path}: needs exactly one of {names}")


def main():
    schema_path, out, source = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
    schema = json.loads(pathlib.Path(schema_path).read_text())
    cls = schema["class"]
    root = out / "ext" / source
    files = sorted(root.rglob("*.parquet"))
    errors = []
    records = 0
    command_lines = 0
    for file in files:
        parts = dict(p.split("=", 1) for p in file.relative_to(root).parent.parts)
        if set(parts) != {"region", "accountId", "eventDay"}:
            errors.append(f"{file}: not in region=/accountId=/eventDay= partitions")
            continue
        for index, record in enumerate(pyarrow.parquet.read_table(file).to_pylist()):
            records += 1
            path = f"{file.name}[{index}]"
            check_object(schema, cls, record, path, errors)
            if record.get("class_uid") != cls["uid"]:
                errors.append(f"{path}: class_uid {record.get('class_uid')} is not {cls['uid']}")
            if record.get("type_uid") != cls["uid"] * 100 + (record.get("activity_id") or 0):
                errors.append(f"{path}: type_uid {record.get('type_uid')} disagrees")
            day = datetime.datetime.fromtimestamp(record["time"] / 1000, datetime.timezone.utc)
            cloud = record.get("cloud") or {}
            if (day.strftime("%Y%m%d"), cloud.get("region"), (cloud.get("account") or {}).get("uid")) != (
                parts["eventDay"], parts["region"], parts["accountId"]):
                errors.append(f"{path}: in the partition of another day, region or account")
            if (record.get("process") or {}).get("cmd_line") is not None:
                command_lines += 1
    print(json.dumps({"files": len(files), "records": records, "command_lines": command_lines,
                      "errors": errors[:20], "error_count": len(errors)}))
    sys.exit(1 if errors or not records else 0)


if __name__ == "__main__":
    main()
