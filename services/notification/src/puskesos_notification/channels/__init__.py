"""Delivery channels behind one port: a provider webhook, and a local file for development."""

from .base import Channel, ChannelUnavailable, DeliveryFailure, OutgoingMessage, SendReceipt
from .local_file import LocalFileChannel
from .ratelimit import TokenBucket
from .webhook import WebhookChannel

__all__ = [
    "Channel",
    "ChannelUnavailable",
    "DeliveryFailure",
    "LocalFileChannel",
    "OutgoingMessage",
    "SendReceipt",
    "TokenBucket",
    "WebhookChannel",
]
