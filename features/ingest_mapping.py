"""How the columns of an outside file become Nudge's events or customer profiles.

A mapping is a small YAML file::

    target: events                 # events (the event stream) or profiles (the event log)
    timezone: Europe/Paris         # optional: the zone of times written without an offset
    fields:                        # each field of the target schema: a column, or a constant
      event_id: order_id           # optional for events; without it, a hash of source + row
      customer_id: customer
      type: {value: purchase}
      occurred_at: {column: ordered_at}          # ISO 8601; or format: unix / unix_ms
    payload:                       # events only: payload key -> column
      order_value: {column: total, type: float}  # string, int, float, bool, timestamp, json
      currency: currency           # json (the default): the value as read

The event schema is ``event_id``, ``customer_id``, ``type``, ``occurred_at``
and the payload; the profile schema is the ``customer_profile`` view's table:
``customer_id``, ``event_timestamp``, ``created_at`` (optional, defaults to
the import's time: when the row became known) and every feature of
:data:`features.definitions.PROFILE_FEATURE_TYPES`, with its type.

Every mistake is an ``InvalidRequest`` naming the mapping's key, found before
a single row is read: an unknown key or target field, a required field left
unmapped, a zone that does not exist, and (:func:`check_columns`) a column the
file does not have.

>>> mapping = parse_mapping({
...     "target": "events",
...     "fields": {"customer_id": "cust", "type": {"value": "purchase"}, "occurred_at": "at"},
...     "payload": {"total": {"column": "amount", "type": "float"}},
... })
>>> sorted(mapping.columns), mapping.fields["type"].value
(['amount', 'at', 'cust'], 'purchase')
>>> parse_mapping({"target": "events", "fields": {"customer_id": "c", "when": "t"}})
Traceback (most recent call last):
...
features.errors.InvalidRequest: `fields.when` is not a field of the events schema; \
expected one of ['customer_id', 'event_id', 'occurred_at', 'type']
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from features.errors import InvalidRequest

__all__ = [
    "KINDS",
    "TARGETS",
    "FieldSource",
    "IngestMapping",
    "TargetField",
    "check_columns",
    "load_mapping",
    "parse_mapping",
    "target_schema",
]

TARGETS: tuple[str, ...] = ("events", "profiles")
KINDS: tuple[str, ...] = ("string", "int", "float", "bool", "timestamp", "json")
TIME_FORMATS: tuple[str, ...] = ("iso", "unix", "unix_ms")
_TOP_KEYS = ("target", "timezone", "fields", "payload", "description")
_SOURCE_KEYS = ("column", "value", "type", "format")
# Feast type names (feast.types) as the kinds their values are read as.
_FEAST_KINDS = {
    "Int32": "int",
    "Int64": "int",
    "Float32": "float",
    "Float64": "float",
    "String": "string",
    "Bool": "bool",
    "UnixTimestamp": "timestamp",
}


@dataclass(frozen=True)
class TargetField:
    """A field of a target schema: its name, how its values are read, whether it must be mapped."""

    name: str
    kind: str
    required: bool


def target_schema(target: str) -> Mapping[str, TargetField]:
    """The fields of ``target`` (``events`` or ``profiles``), in their stored order.

    >>> [(f.name, f.kind, f.required) for f in target_schema("events").values()]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('event_id', 'string', False), ('customer_id', 'string', True), ('type', 'string', True),
     ('occurred_at', 'timestamp', True)]
    >>> list(target_schema("profiles"))[-2:], target_schema("profiles")["recency"].kind
    (['event_timestamp', 'created_at'], 'int')
    """
    if target == "events":
        fields = [
            TargetField("event_id", "string", False),
            TargetField("customer_id", "string", True),
            TargetField("type", "string", True),
            TargetField("occurred_at", "timestamp", True),
        ]
    elif target == "profiles":
        # Read at call time: the profile view's features are the feature repo's to change.
        from features.definitions import PROFILE_FEATURE_TYPES

        fields = [TargetField("customer_id", "string", True)]
        for name, feast_type in PROFILE_FEATURE_TYPES.items():
            if feast_type not in _FEAST_KINDS:
                raise InvalidRequest(
                    f"PROFILE_FEATURE_TYPES.{name}", f"must be one of {sorted(_FEAST_KINDS)}"
                )
            fields.append(TargetField(name, _FEAST_KINDS[feast_type], True))
        fields.append(TargetField("event_timestamp", "timestamp", True))
        fields.append(TargetField("created_at", "timestamp", False))
    else:
        raise InvalidRequest("target", f"must be one of {list(TARGETS)}", target)
    return MappingProxyType({f.name: f for f in fields})


@dataclass(frozen=True)
class FieldSource:
    """Where one field's values come from: a column of the file, or one constant ``value``."""

    column: str | None = None
    value: Any = None
    kind: str = "json"
    """How the values are read: string, int, float, bool, timestamp or json (as read)."""
    format: str = "iso"
    """Timestamps: ``iso`` (ISO 8601 text, or a date-time the file format holds),
    ``unix`` or ``unix_ms`` (seconds or milliseconds since 1970, UTC)."""


@dataclass(frozen=True)
class IngestMapping:
    """A checked mapping: the target, each target field's source, the payload's, the zone."""

    target: str
    fields: Mapping[str, FieldSource]
    payload: Mapping[str, FieldSource] = field(default_factory=dict)
    timezone: str | None = None
    """The IANA zone of times without an offset; None: such times are rejected."""

    @property
    def columns(self) -> frozenset[str]:
        """Every column of the file this mapping reads."""
        sources = [*self.fields.values(), *self.payload.values()]
        return frozenset(s.column for s in sources if s.column is not None)

    @property
    def zone(self) -> ZoneInfo | None:
        return None if self.timezone is None else ZoneInfo(self.timezone)


def load_mapping(path: Path | str) -> IngestMapping:
    """Read and check a mapping file; an error names the file and the key.

    >>> load_mapping(Path(__file__).parent / "mappings" / "hillstrom.yaml").target
    'profiles'
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError:
        raise InvalidRequest("--mapping", "must be a readable YAML file", str(path)) from None
    except yaml.YAMLError as error:
        raise InvalidRequest("--mapping", f"must be valid YAML ({error})", str(path)) from None
    try:
        return parse_mapping(raw)
    except InvalidRequest as error:
        raise InvalidRequest(error.field, f"{error.expected} (mapping {path})", error.got) from None


def parse_mapping(raw: object) -> IngestMapping:
    """Check a mapping given as YAML's plain values; ``InvalidRequest`` names the bad key."""
    doc = _object(raw, "mapping")
    for key in doc:
        if key not in _TOP_KEYS:
            raise InvalidRequest(
                str(key), f"is not a mapping key; expected one of {list(_TOP_KEYS)}"
            )
    target = doc.get("target")
    if target not in TARGETS:
        raise InvalidRequest("target", f"must be one of {list(TARGETS)}", target)
    zone = doc.get("timezone")
    if zone is not None:
        _check_zone(zone)
    schema = target_schema(target)
    given = _object(doc.get("fields"), "fields")
    fields: dict[str, FieldSource] = {}
    for name, spec in given.items():
        if name not in schema:
            raise InvalidRequest(
                f"fields.{name}",
                f"is not a field of the {target} schema; expected one of {sorted(schema)}",
            )
        fields[name] = _source(spec, f"fields.{name}", schema[name].kind)
    for name, wanted in schema.items():
        if wanted.required and name not in fields:
            raise InvalidRequest(f"fields.{name}", f"must be mapped: the {target} schema needs it")
    payload: dict[str, FieldSource] = {}
    if doc.get("payload") is not None:
        if target != "events":
            raise InvalidRequest("payload", "is only for events: profiles have fields alone")
        for key, spec in _object(doc["payload"], "payload").items():
            payload[key] = _source(spec, f"payload.{key}", None)
    return IngestMapping(
        target=target,
        fields=MappingProxyType(fields),
        payload=MappingProxyType(payload),
        timezone=zone,
    )


def check_columns(mapping: IngestMapping, columns: Collection[str]) -> None:
    """Raise ``InvalidRequest`` naming the first mapping key whose column the file lacks."""
    present = set(columns)
    for section, sources in (("fields", mapping.fields), ("payload", mapping.payload)):
        for name, source in sources.items():
            if source.column is not None and source.column not in present:
                raise InvalidRequest(
                    f"{section}.{name}",
                    f"names column {source.column!r}, which the file does not have; "
                    f"its columns are {sorted(present)}",
                )


def _object(raw: object, where: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not all(isinstance(key, str) for key in raw):
        raise InvalidRequest(where, "must be a mapping with text keys", type(raw).__name__)
    return raw


def _check_zone(zone: object) -> None:
    try:
        if not isinstance(zone, str) or not zone:
            raise ValueError
        ZoneInfo(zone)
    except (ValueError, ZoneInfoNotFoundError):
        raise InvalidRequest(
            "timezone", "must be an IANA time zone such as Europe/Paris or UTC", zone
        ) from None


def _source(spec: object, where: str, kind: str | None) -> FieldSource:
    """One field's source; ``kind`` is the schema's (fixed), None for a payload key (chosen)."""
    if isinstance(spec, str):
        spec = {"column": spec}
    doc = _object(spec, where)
    for key in doc:
        if key not in _SOURCE_KEYS:
            raise InvalidRequest(
                f"{where}.{key}", f"is not a field setting; expected one of {list(_SOURCE_KEYS)}"
            )
    if ("column" in doc) == ("value" in doc):
        raise InvalidRequest(where, "must give either `column` (a column name) or `value`")
    column = doc.get("column")
    if "column" in doc and (not isinstance(column, str) or not column):
        raise InvalidRequest(f"{where}.column", "must be a column name", column)
    if "type" in doc:
        if kind is not None:
            raise InvalidRequest(f"{where}.type", f"is fixed by the schema ({kind})")
        if doc["type"] not in KINDS:
            raise InvalidRequest(f"{where}.type", f"must be one of {list(KINDS)}", doc["type"])
    chosen = kind or doc.get("type", "json")
    time_format = doc.get("format", "iso")
    if "format" in doc and chosen != "timestamp":
        raise InvalidRequest(f"{where}.format", "is only for timestamps")
    if time_format not in TIME_FORMATS:
        raise InvalidRequest(f"{where}.format", f"must be one of {list(TIME_FORMATS)}", time_format)
    value = doc.get("value")
    if "value" in doc and (value is None or isinstance(value, list | dict)):
        raise InvalidRequest(f"{where}.value", "must be a single text, number or boolean", value)
    return FieldSource(column=column, value=value, kind=chosen, format=time_format)
