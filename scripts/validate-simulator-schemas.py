#!/usr/bin/env python3
"""Validates provider-simulator responses against the JSON Schemas derived from the seed documents.

Usage: validate-simulator-schemas.py SAMPLES_DIR [--schemas SCHEMAS_DIR]

Every file in SAMPLES_DIR named `<schema>__<label>.json` is validated against
`<SCHEMAS_DIR>/<schema>.json` (default: Tests/ProviderSimulatorTests/Schemas next to this script's
repository root). Exits 0 when every sample is valid, 1 when any is invalid (each error is printed
with the sample's name and the JSON path), 2 on usage problems: a missing directory, no samples,
a sample naming no known schema, or a sample that is not JSON. Needs `pip install jsonschema`.
"""

import argparse
import datetime
import json
import pathlib
import re
import sys

try:
    import jsonschema
except ImportError:  # pragma: no cover - reported, not hidden
    print("validate-simulator-schemas: the Python package 'jsonschema' is required (pip install jsonschema)", file=sys.stderr)
    sys.exit(2)

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

format_checker = jsonschema.FormatChecker()


@format_checker.checks("date-time")
def is_date_time(value):
    # jsonschema skips date-time silently when rfc3339-validator is absent; check it ourselves.
    if not isinstance(value, str):
        return True
    if not RFC3339.match(value):
        return False
    try:
        normalized = value.upper().replace("Z", "+00:00")
        if "." in normalized:
            head, rest = normalized.split(".", 1)
            digits = re.match(r"\d+", rest).group(0)
            normalized = head + "." + digits[:6].ljust(6, "0") + rest[len(digits):]
        datetime.datetime.fromisoformat(normalized)
    except ValueError:
        return False
    return True


@format_checker.checks("uuid")
def is_uuid(value):
    return not isinstance(value, str) or bool(UUID.match(value))


def main():
    default_schemas = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "ProviderSimulatorTests" / "Schemas"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", type=pathlib.Path)
    parser.add_argument("--schemas", type=pathlib.Path, default=default_schemas)
    arguments = parser.parse_args()

    if not arguments.samples.is_dir() or not arguments.schemas.is_dir():
        print(f"validate-simulator-schemas: not a directory: {arguments.samples if not arguments.samples.is_dir() else arguments.schemas}", file=sys.stderr)
        return 2
    samples = sorted(p for p in arguments.samples.iterdir() if p.suffix == ".json")
    if not samples:
        print("validate-simulator-schemas: no samples to validate", file=sys.stderr)
        return 2

    validators = {}
    failures = 0
    for sample in samples:
        schema_name = sample.name.split("__", 1)[0]
        if schema_name.endswith(".json"):
            schema_name = schema_name[: -len(".json")]
        schema_path = arguments.schemas / f"{schema_name}.json"
        if not schema_path.is_file():
            print(f"{sample.name}: no schema named {schema_name}", file=sys.stderr)
            return 2
        if schema_name not in validators:
            schema = json.loads(schema_path.read_text(encoding="utf-8"))
            jsonschema.Draft202012Validator.check_schema(schema)
            validators[schema_name] = jsonschema.Draft202012Validator(schema, format_checker=format_checker)
        try:
            document = json.loads(sample.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            print(f"{sample.name}: not JSON: {error}", file=sys.stderr)
            return 2
        errors = sorted(validators[schema_name].iter_errors(document), key=lambda e: list(e.absolute_path))
        for error in errors[:20]:
            location = "/".join(str(part) for part in error.absolute_path) or "(root)"
            detail = error.message
            if error.context:
                # oneOf: show why the closest branch failed, not only that none matched.
                best = jsonschema.exceptions.best_match(error.context)
                detail += f" [closest branch: {'/'.join(str(p) for p in best.absolute_path)}: {best.message}]"
            print(f"{sample.name}: {location}: {detail}", file=sys.stderr)
        if errors:
            failures += 1
    print(f"validate-simulator-schemas: {len(samples) - failures} valid, {failures} invalid samples")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
