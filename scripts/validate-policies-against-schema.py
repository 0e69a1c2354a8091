#!/usr/bin/env python3
"""Validates policy files against the generated JSON Schema with an implementation that shares
nothing with consentd's parser (python-jsonschema): every file given must be valid.

Usage: scripts/validate-policies-against-schema.py SCHEMA FILE...
YAML is read with the YAML 1.2 core schema's booleans (true/false only), as consentd reads it,
so `NO` (Norway) stays a string.
"""
import datetime
import json
import re
import sys

import jsonschema
import yaml


class Core12Loader(yaml.SafeLoader):
    pass


# YAML 1.1's yes/no/on/off booleans are strings in 1.2.
Core12Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Core12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def plain(value):
    """Dates and times as the strings they were written as (the schema wants strings)."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


def main():
    schema = json.load(open(sys.argv[1]))
    validator = jsonschema.Draft202012Validator(schema)
    failures = 0
    for path in sys.argv[2:]:
        document = plain(yaml.load(open(path), Loader=Core12Loader))
        errors = list(validator.iter_errors(document))
        for error in errors:
            # oneOf hides the branch: report the one for the document's kind.
            best = jsonschema.exceptions.best_match(error.context or [error])
            print(f"{path}: {'/'.join(map(str, best.path))}: {best.message}")
        failures += bool(errors)
    print(f"{len(sys.argv) - 2} files, {failures} invalid against {sys.argv[1]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
