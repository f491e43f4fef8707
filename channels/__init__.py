"""Channels: email, SMS, push and webhook senders behind one ``send`` protocol (see issue 6).

Every channel takes an ``OutboundMessage`` and returns a ``Receipt`` or raises
``SendFailed`` (transient or permanent); the message id is the idempotency key, so
a retry of an accepted send is recognisable as the same send. Around them: retries
and rate limits, Jinja2 templates, signed tracking links, provider callbacks and
the YAML file that says which channels a deployment has.
"""

from channels.ads import AdsChannel, AudienceApiChannel, AudienceSpec, hash_email, hash_phone
from channels.audience_report import audience_report, format_report, write_report
from channels.audience_sync import AudienceRules, AudienceSync, SyncResult
from channels.audiences import AudienceStore
from channels.callbacks import EVENT_TYPES, CallbackVerifier, ProviderEvent, parse_callback
from channels.compose import compose
from channels.config import (
    DEFAULT_CHANNELS,
    ChannelsConfig,
    build_channels,
    load_channels_config,
)
from channels.file_outbox import FileOutbox
from channels.http_provider import HttpProviderChannel
from channels.reliability import RateLimitedChannel, RetryingChannel, send_batch
from channels.smtp import SmtpChannel, build_email, message_id_header
from channels.templates import DEFAULT_TEMPLATES, Rendered, TemplateRenderer
from channels.tracking import TrackedLink, TrackingLinks
from channels.types import Channel, OutboundMessage, Receipt, SendFailed
from channels.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookChannel,
    sign_payload,
    verify_signature,
)

__all__ = [
    "DEFAULT_CHANNELS",
    "DEFAULT_TEMPLATES",
    "EVENT_TYPES",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AdsChannel",
    "AudienceApiChannel",
    "AudienceRules",
    "AudienceSpec",
    "AudienceStore",
    "AudienceSync",
    "CallbackVerifier",
    "Channel",
    "ChannelsConfig",
    "FileOutbox",
    "HttpProviderChannel",
    "OutboundMessage",
    "ProviderEvent",
    "RateLimitedChannel",
    "Receipt",
    "Rendered",
    "RetryingChannel",
    "SendFailed",
    "SmtpChannel",
    "SyncResult",
    "TemplateRenderer",
    "TrackedLink",
    "TrackingLinks",
    "WebhookChannel",
    "audience_report",
    "build_channels",
    "build_email",
    "compose",
    "format_report",
    "hash_email",
    "hash_phone",
    "load_channels_config",
    "message_id_header",
    "parse_callback",
    "send_batch",
    "sign_payload",
    "verify_signature",
    "write_report",
]
