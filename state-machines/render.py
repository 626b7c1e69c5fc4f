#!/usr/bin/env python3
"""Fill the `${Name}` placeholders of a state machine (*.asl.json) or an EventBridge pattern (events/*.json).

    state-machines/render.py TEMPLATE VALUES.json > rendered.json

The ASL placeholders are the names CloudFormation's DefinitionSubstitutions fills (infra/template.yaml);
this is the same substitution for deployments without CloudFormation: the local emulator (tests/flow, scripts/
demo-flow). A JSON string that is exactly `${Name}` becomes the value as JSON (so a pattern's
`"${ArchiveVaultNames}"` can become a list); inside a longer string the value is inserted as text. A
placeholder without a value is an error, never left in place.
"""

import json
import re
import sys

PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


class MissingValue(KeyError):
    pass


def render(document, values: dict):
    """`document` (parsed JSON) with every placeholder filled from `values`."""
    if isinstance(document, dict):
        return {render(key, values): render(value, values) for key, value in document.items()}
    if isinstance(document, list):
        return [render(item, values) for item in document]
    if isinstance(document, str):
        whole = PLACEHOLDER.fullmatch(document)
        if whole:
            return lookup(whole.group(1), values)
        return PLACEHOLDER.sub(lambda m: str(lookup(m.group(1), values)), document)
    return document


def lookup(name: str, values: dict):
    if name not in values:
        raise MissingValue(f"no value for the placeholder ${{{name}}}")
    return values[name]


def placeholders(document) -> set:
    """Every placeholder name in `document`."""
    return set(PLACEHOLDER.findall(json.dumps(document)))


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    with open(argv[1]) as template, open(argv[2]) as values:
        document, mapping = json.load(template), json.load(values)
    try:
        print(json.dumps(render(document, mapping), indent=2))
    except MissingValue as error:
        print(f"render: {argv[1]}: {error.args[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
