"""What the Celery broker says: whether it answers, and how many messages wait on each queue.

Read through kombu (Celery's transport), so RabbitMQ and Redis answer the same way: a passive
queue declare, which never creates a queue, returns its ready message count.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from service.db.session import shown


def _connection(url: str, timeout_s: float) -> Any:
    from kombu import Connection

    return Connection(url, connect_timeout=timeout_s, transport_options={
        "socket_connect_timeout": timeout_s, "socket_timeout": timeout_s,
        "max_retries": 1})


def ping(url: str, timeout_s: float = 3.0) -> str | None:
    """Returns None when the broker answers, else what is wrong and the fix."""
    try:
        with _connection(url, timeout_s) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - kombu raises many kinds for one meaning
        return (f"broker {shown(url)} unreachable ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else 'no answer'}); start RabbitMQ/Redis "
                "or fix EVOFORGE_BROKER")
    return None


def messages(url: str, queues: Iterable[str], timeout_s: float = 3.0) -> dict[str, int]:
    """Returns the ready messages of each queue that exists on the broker (absent: not declared
    yet, no worker ever consumed it); raises OSError-like kombu errors when it is down."""
    from kombu.exceptions import ChannelError

    found: dict[str, int] = {}
    with _connection(url, timeout_s) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout_s)
        channel = conn.channel()
        for name in queues:
            try:
                found[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
            except ChannelError:  # no such queue; on AMQP the channel is closed: take another
                channel = conn.channel()
            except Exception as exc:  # py-amqp's NotFound is not a ChannelError
                if "NOT_FOUND" not in str(exc) and "404" not in str(exc):
                    raise
                channel = conn.channel()
        channel.close()
    return found
