"""The registry's JSON Schemas, compiled once into Python checks. Standard library only.

``verify()`` validates the index and every data file against ``schemas/registry-*.schema.json``. A general
validator (``jsonschema``) takes ~9 s over the 16 MB registry; the schemas use a small part of JSON Schema
2020-12, which `compile_schema` turns into nested closures once (``$ref`` resolved at compile time, each
``properties`` / ``items`` a direct call), ~20× faster, and with no dependency. It implements exactly the
keywords the registry's schemas use:

``type`` (``integer`` meaning an integer token, as ``builder validate`` reads it), ``const``, ``enum``,
``pattern``, ``minLength``, ``minimum``, ``maximum``, ``exclusiveMinimum``, ``minItems``, ``maxItems``, ``items``,
``prefixItems``, ``uniqueItems``, ``properties``, ``required``, ``additionalProperties``, ``propertyNames``,
``minProperties``, ``$ref`` (to ``#/$defs/...``), ``allOf``, ``anyOf``, ``not``, ``if``/``then``/``else``; the
annotations (``description``, ``title``, ``$schema``, ``$id``, ``$defs``, ``$comment``, ``examples``,
``default``) are ignored. A schema with any other keyword raises `Unsupported` (``verify`` then says it
skipped schema validation, naming the keyword): nothing is silently not checked.

``python -m builder validate`` keeps the full ``jsonschema`` validator (with format checking); the tests
check that the two refuse the same documents (tests/test_validate.py).
"""

from __future__ import annotations

import re

ANNOTATIONS = frozenset({"description", "title", "$schema", "$id", "$defs", "$comment", "examples", "default"})


class Unsupported(ValueError):
    """The schema uses a keyword this module does not implement (the message names it)."""


_TYPES = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}
_NUMBERS = frozenset((int, float))


def _equal(a: object, b: object) -> bool:
    """JSON equality: booleans are not numbers; 1 and 1.0 are equal."""
    if (type(a) is bool) != (type(b) is bool):
        return False
    if type(a) is list and type(b) is list:
        return len(a) == len(b) and all(map(_equal, a, b))
    if type(a) is dict and type(b) is dict:
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return a == b and type(a) not in (list, dict) and type(b) not in (list, dict)


def _pointer(path: tuple) -> str:
    return "/" + "/".join(str(p) for p in path)


def compile_schema(schema: dict):
    """``check(instance) -> None | (message, path)``: the first way ``instance`` breaks ``schema``."""
    defs = schema.get("$defs", {})
    compiled: dict[str, object] = {}

    def ref(target: str):
        if not target.startswith("#/$defs/") or target[8:] not in defs:
            raise Unsupported(f"$ref {target!r} (only '#/$defs/<name>' is supported)")
        name = target[8:]
        if name not in compiled:
            compiled[name] = None  # a recursive reference resolves through the cell below
            compiled[name] = build(defs[name])

        def check(x):
            return compiled[name](x)

        return check

    def build(node: object):
        if node is True or node == {}:
            return lambda x: None
        if node is False:
            return lambda x: ("nothing is allowed here", ())
        if not isinstance(node, dict):
            raise Unsupported(f"a schema must be an object or a boolean, got {type(node).__name__}")
        unknown = set(node) - ANNOTATIONS - _KEYWORDS
        if unknown:
            raise Unsupported(f"keyword {sorted(unknown)[0]!r}")
        checks = [_KEYWORDS_BUILD[k](node[k], node, build, ref) for k in _ORDER if k in node]
        checks = [c for c in checks if c is not None]
        if len(checks) == 1:
            return checks[0]

        def check(x):
            for c in checks:
                err = c(x)
                if err is not None:
                    return err
            return None

        return check

    return build(schema)


def errors(check, instance: object, where: str) -> list[str]:
    """The schema problem of ``instance`` as the loader reports it (one line, or none)."""
    err = check(instance)
    return [] if err is None else [f"{where}: schema: {err[0]} at {_pointer(err[1])}"]


# ---- the keywords


def _type(value, node, build, ref):
    names = value if isinstance(value, list) else [value]
    allowed = frozenset(t for n in names for t in _TYPES[n])
    shown = " or ".join(names)

    def check(x):
        if type(x) not in allowed:
            return (f"{_short(x)} is not of type {shown}", ())
        return None

    return check


def _const(value, node, build, ref):
    return lambda x: None if _equal(x, value) else (f"{_short(x)} was expected to be {value!r}", ())


def _enum(value, node, build, ref):
    return lambda x: None if any(_equal(x, v) for v in value) else (f"{_short(x)} is not one of {value!r}", ())


def _pattern(value, node, build, ref):
    search = re.compile(value).search
    return lambda x: None if type(x) is not str or search(x) else (f"{_short(x)} does not match {value!r}", ())


def _min_length(value, node, build, ref):
    return lambda x: None if type(x) is not str or len(x) >= value else (f"{_short(x)} is too short", ())


def _minimum(value, node, build, ref):
    def check(x):
        if type(x) in _NUMBERS and x < value:
            return (f"{x!r} is less than the minimum {value!r}", ())
        return None

    return check


def _maximum(value, node, build, ref):
    def check(x):
        if type(x) in _NUMBERS and x > value:
            return (f"{x!r} is greater than the maximum {value!r}", ())
        return None

    return check


def _exclusive_minimum(value, node, build, ref):
    def check(x):
        if type(x) in _NUMBERS and x <= value:
            return (f"{x!r} is not greater than {value!r}", ())
        return None

    return check


def _min_items(value, node, build, ref):
    return lambda x: None if type(x) is not list or len(x) >= value else (f"fewer than {value} items", ())


def _max_items(value, node, build, ref):
    return lambda x: None if type(x) is not list or len(x) <= value else (f"more than {value} items", ())


def _items(value, node, build, ref):
    sub, start = build(value), len(node.get("prefixItems", ()))

    def check(x):
        if type(x) is list:
            for i in range(start, len(x)):
                err = sub(x[i])
                if err is not None:
                    return (err[0], (i, *err[1]))
        return None

    return check


def _prefix_items(value, node, build, ref):
    subs = [build(v) for v in value]

    def check(x):
        if type(x) is list:
            for i, (sub, item) in enumerate(zip(subs, x, strict=False)):
                err = sub(item)
                if err is not None:
                    return (err[0], (i, *err[1]))
        return None

    return check


def _unique_items(value, node, build, ref):
    if not value:
        return None

    def check(x):
        if type(x) is list:
            for i in range(len(x)):
                for j in range(i + 1, len(x)):
                    if _equal(x[i], x[j]):
                        return (f"items {i} and {j} are equal (uniqueItems)", ())
        return None

    return check


def _properties(value, node, build, ref):
    subs = [(k, build(v)) for k, v in value.items()]

    def check(x):
        if type(x) is dict:
            for k, sub in subs:
                if k in x:
                    err = sub(x[k])
                    if err is not None:
                        return (err[0], (k, *err[1]))
        return None

    return check


def _required(value, node, build, ref):
    def check(x):
        if type(x) is dict:
            for k in value:
                if k not in x:
                    return (f"{k!r} is a required property", ())
        return None

    return check


def _additional(value, node, build, ref):
    known = frozenset(node.get("properties", ()))
    sub = None if value is False else build(value)

    def check(x):
        if type(x) is dict:
            for k in x:
                if k not in known:
                    if sub is None:
                        return (f"additional property {_short(k)} is not allowed", ())
                    err = sub(x[k])
                    if err is not None:
                        return (err[0], (k, *err[1]))
        return None

    return check


def _property_names(value, node, build, ref):
    sub = build(value)

    def check(x):
        if type(x) is dict:
            for k in x:
                err = sub(k)
                if err is not None:
                    return (f"property name {err[0]}", ())
        return None

    return check


def _min_properties(value, node, build, ref):
    return lambda x: None if type(x) is not dict or len(x) >= value else (f"fewer than {value} properties", ())


def _all_of(value, node, build, ref):
    subs = [build(v) for v in value]

    def check(x):
        for sub in subs:
            err = sub(x)
            if err is not None:
                return err
        return None

    return check


def _any_of(value, node, build, ref):
    subs = [build(v) for v in value]

    def check(x):
        first = None
        for sub in subs:
            err = sub(x)
            if err is None:
                return None
            first = first or err
        return (f"{_short(x)} is valid under none of anyOf ({first[0]})", ())

    return check


def _not(value, node, build, ref):
    sub = build(value)
    return lambda x: ("should not be valid under the 'not' schema", ()) if sub(x) is None else None


def _if(value, node, build, ref):
    cond = build(value)
    then = build(node.get("then", True))
    otherwise = build(node.get("else", True))
    return lambda x: then(x) if cond(x) is None else otherwise(x)


def _ref(value, node, build, ref):
    return ref(value)


def _short(x: object) -> str:
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


_KEYWORDS_BUILD = {
    "$ref": _ref,
    "type": _type,
    "const": _const,
    "enum": _enum,
    "pattern": _pattern,
    "minLength": _min_length,
    "minimum": _minimum,
    "maximum": _maximum,
    "exclusiveMinimum": _exclusive_minimum,
    "minItems": _min_items,
    "maxItems": _max_items,
    "prefixItems": _prefix_items,
    "items": _items,
    "uniqueItems": _unique_items,
    "required": _required,
    "properties": _properties,
    "additionalProperties": _additional,
    "propertyNames": _property_names,
    "minProperties": _min_properties,
    "allOf": _all_of,
    "anyOf": _any_of,
    "not": _not,
    "if": _if,
}
_KEYWORDS = frozenset(_KEYWORDS_BUILD) | {"then", "else"}
_ORDER = tuple(_KEYWORDS_BUILD)  # type first: later checks may assume it
