"""kombu's Redis transport, with one Redis client object per channel instead of one per call.

kombu's Redis channel builds a new ``redis.Redis`` around its connection pool for every publish,
every acknowledgement and every queue operation (``Channel.conn_or_acquire``). With redis-py 8
building one costs about 0.1 ms of CPU on a 2-core machine (its response-callback table is
rebuilt each time): about a tenth of a worker's CPU per flow, and the same again in the
producer. A ``redis.Redis`` is a thin, thread-safe wrapper around the pool, so the channel can
keep one; connections still come from, and go back to, the same pool on every command.

``config/celery.py`` selects this transport for ``redis://`` broker URLs only.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _kept_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        pool = self.pool  # a new one after a fork or a reconnect: then a new client too
        client = self._kept_client
        if client is None or client.connection_pool is not pool:
            client = self._kept_client = super()._create_client()
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel
