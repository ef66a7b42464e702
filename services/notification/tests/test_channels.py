"""The channels against a real local HTTP provider: idempotency keys, retries with backoff, rate limit."""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path

import pytest
from puskesos_notification.channels import (
    ChannelUnavailable,
    DeliveryFailure,
    LocalFileChannel,
    OutgoingMessage,
    TokenBucket,
    WebhookChannel,
)
from puskesos_notification.testing import ProviderSink
from puskesos_shared.contracts.notification import FailureReason, NotificationChannel


class Sleeps:
    """Records the delays the channel asks for instead of waiting (backoff is asserted, not timed)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def message(n: int = 1) -> OutgoingMessage:
    return OutgoingMessage(notification_id=uuid.UUID(int=n), to="+6281234567890", text="Halo", template_id="t",
                           template_version=1)


def webhook(url: str, sleeps: Sleeps, **kwargs: object) -> WebhookChannel:
    options: dict[str, object] = {"max_attempts": 5, "backoff_initial_seconds": 0.5, "backoff_max_seconds": 8.0,
                                  "timeout_seconds": 5.0, **kwargs}
    return WebhookChannel(url, sleep=sleeps, jitter=lambda: 1.0, bucket=TokenBucket(1000, 1000),
                          **options)  # type: ignore[arg-type]


async def test_sends_once_per_idempotency_key(sink: ProviderSink) -> None:
    channel = webhook(sink.url, Sleeps(), token="provider-token")
    msg = message()
    first = await channel.send(msg)
    again = await channel.send(msg)  # a resend after a crash: same key
    key = str(msg.notification_id)
    requests, accepted = sink.snapshot()
    assert requests[key] == 2 and accepted[key] == 1
    assert first.provider_message_id == again.provider_message_id == f"msg-{key}"
    assert (first.replayed, again.replayed) == (False, True)
    assert sink.to_for(key) == "6281234567890"  # WhatsApp form
    await channel.close()


async def test_500_is_retried_with_exponential_backoff_then_fails(sink: ProviderSink) -> None:
    sink.mode = "error"
    sleeps = Sleeps()
    channel = webhook(sink.url, sleeps)
    with pytest.raises(DeliveryFailure) as failure:
        await channel.send(message())
    assert failure.value.reason is FailureReason.PROVIDER_ERROR
    assert failure.value.detail == "HTTP 500 after 5 attempts" and failure.value.attempts == 5
    assert sleeps.delays == [0.5, 1.0, 2.0, 4.0]
    requests, accepted = sink.snapshot()
    assert requests[str(uuid.UUID(int=1))] == 5 and not accepted
    await channel.close()


async def test_a_transient_failure_is_retried_until_accepted(sink: ProviderSink) -> None:
    sink.fail_first[str(uuid.UUID(int=1))] = 2
    sink.error_status = 503
    sleeps = Sleeps()
    channel = webhook(sink.url, sleeps)
    receipt = await channel.send(message())
    assert receipt.attempts == 3 and sleeps.delays == [0.5, 1.0]
    assert sink.snapshot()[1][str(uuid.UUID(int=1))] == 1
    await channel.close()


async def test_timeouts_are_retried_then_fail_with_the_reason(sink: ProviderSink) -> None:
    sink.mode = "hang"
    sink.hang_seconds = 1.0
    sleeps = Sleeps()
    channel = webhook(sink.url, sleeps, timeout_seconds=0.2, max_attempts=2)
    with pytest.raises(DeliveryFailure) as failure:
        await channel.send(message())
    assert failure.value.reason is FailureReason.PROVIDER_ERROR
    assert failure.value.detail == "timeout after 0.2s after 2 attempts"
    assert sleeps.delays == [0.5]
    await channel.close()


async def test_a_timeout_after_the_provider_accepted_is_resent_under_the_same_key(sink: ProviderSink) -> None:
    sink.mode = "accept_then_hang"
    sink.hang_seconds = 1.0
    channel = webhook(sink.url, Sleeps(), timeout_seconds=0.2)
    receipt = await channel.send(message())
    assert receipt.attempts == 2 and receipt.replayed
    requests, accepted = sink.snapshot()
    assert requests[str(uuid.UUID(int=1))] == 2 and accepted[str(uuid.UUID(int=1))] == 1  # one message
    await channel.close()


async def test_a_4xx_answer_is_a_rejection_without_retry(sink: ProviderSink) -> None:
    sink.mode = "reject"
    sleeps = Sleeps()
    channel = webhook(sink.url, sleeps)
    with pytest.raises(DeliveryFailure) as failure:
        await channel.send(message())
    assert failure.value.reason is FailureReason.REJECTED_BY_PROVIDER
    assert (failure.value.detail, failure.value.attempts, sleeps.delays) == ("HTTP 400", 1, [])
    await channel.close()


async def test_an_unreachable_provider_fails_after_the_retries() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    channel = webhook(f"http://127.0.0.1:{port}/messages", sleeps, max_attempts=3)
    with pytest.raises(DeliveryFailure, match=r"connection error \(ConnectError\) after 3 attempts"):
        await channel.send(message())
    assert sleeps.delays == [0.5, 1.0]
    await channel.close()
    with pytest.raises(ChannelUnavailable):  # after close (shutdown): retried later, never recorded as failed
        await channel.send(message())


def test_backoff_is_capped_jittered_and_honours_retry_after() -> None:
    channel = WebhookChannel("http://127.0.0.1:9/", jitter=lambda: 0.0, backoff_initial_seconds=1,
                             backoff_max_seconds=8)
    assert [channel.backoff(a) for a in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]  # half of 1, 2, 4, 8, 8, 8
    assert channel.backoff(1, retry_after=3.0) == 3.0
    assert channel.backoff(1, retry_after=60.0) == 8.0  # never beyond the cap


async def test_token_bucket_limits_the_rate() -> None:
    now = [0.0]

    async def advance(seconds: float) -> None:
        now[0] += seconds

    bucket = TokenBucket(rate=10, burst=3, clock=lambda: now[0], sleep=advance)
    waits = [await bucket.acquire() for _ in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]  # the burst
    assert all(w == pytest.approx(0.1) for w in waits[3:])  # then 10 per second
    assert now[0] == pytest.approx(0.3)


async def test_local_file_channel_writes_each_notification_once(tmp_path: Path) -> None:
    path = tmp_path / "out" / "messages.jsonl"
    channel = LocalFileChannel(path)
    assert channel.kind is NotificationChannel.LOCAL_FILE
    await channel.send(message(1))
    await channel.send(message(1))
    with path.open("a") as f:
        f.write('{"notification_id": "cut sho')  # a line cut short by a crash
    restarted = LocalFileChannel(path)
    receipt = await restarted.send(message(1))
    assert receipt.replayed
    await restarted.send(message(2))
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    assert [line["notification_id"] for line in lines] == [str(uuid.UUID(int=1)), str(uuid.UUID(int=2))]
    assert lines[0]["to"] == "0812****7890" and lines[0]["text"] == "Halo"
