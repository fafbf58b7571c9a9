"""NAME=VALUE items given on the command line, read alike for --set, --condition and --label-pattern."""

from musicgen.errors import UserError


def key_value(item, flag, shape="KEY=VALUE", example=None):
    """'name=value' given to `flag` -> (name, value), the name stripped of spaces, the value as written; refused in
    one line, naming the flag, the `shape` it takes and an `example`, where either side is empty."""
    name, separator, value = item.partition("=")
    if not separator or not name.strip() or not value.strip():
        raise UserError(f"{flag} takes {shape}{f', e.g. {example}' if example else ''}; got {item!r}")
    return name.strip(), value


def key_values(items, flag, shape="KEY=VALUE", example=None):
    """{name: value} of repeated `flag` items (key_value); a name given twice is refused."""
    values = {}
    for item in items:
        name, value = key_value(item, flag, shape, example)
        if name in values:
            raise UserError(f"{flag} gives {name} twice")
        values[name] = value
    return values
