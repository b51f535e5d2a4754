"""Limits on failed logins (standalone mode): per user name, so one account cannot be guessed
at, and per client address, so one caller cannot spray guesses over many accounts.

Only failures count. The counts live in this process (a moving window in memory): with
several replicas each one keeps its own, so a client that spreads its guesses over N
replicas gets N times the limit.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from pravah_api.errors import ApiError


class LoginLimits:
    def __init__(self, user_failures: int, address_failures: int, window_seconds: int):
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.per_user = RateLimitItemPerSecond(user_failures, window_seconds)
        self.per_address = RateLimitItemPerSecond(address_failures, window_seconds)

    async def check(self, username: str, address: str) -> None:
        """Raise 429 with Retry-After while the user name or the address has failed too often;
        a correct password is refused too, or the limit would not stop the guessing."""
        for item, kind, key, field in ((self.per_user, "user", username, "username"),
                                       (self.per_address, "address", address, None)):
            if not await self.limiter.test(item, kind, key):
                stats = await self.limiter.get_window_stats(item, kind, key)
                retry = max(1, math.ceil(stats.reset_time - time.time()))
                whom = "this user name" if kind == "user" else "this client address"
                raise ApiError(429, f"too many failed logins for {whom}; retry in {retry} s", field,
                               headers={"Retry-After": str(retry)})

    async def failed(self, username: str, address: str) -> None:
        await self.limiter.hit(self.per_user, "user", username)
        await self.limiter.hit(self.per_address, "address", address)
