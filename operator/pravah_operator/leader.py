"""One active operator among replicas, chosen by a coordination.k8s.io Lease.

Standby replicas retry the Lease; the leader renews it and stops (so that its Deployment
restarts it as a standby) as soon as it cannot prove it still holds it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger("pravah.leader")


class LeaseLost(Exception):
    pass


class LeaderElector:
    def __init__(self, api: client.ApiClient, name: str, namespace: str, identity: str, lease_seconds: int):
        self.leases = client.CoordinationV1Api(api)
        self.name, self.namespace, self.identity = name, namespace, identity
        self.lease_seconds = lease_seconds

    async def try_acquire(self) -> bool:
        """Take or renew the Lease if it is ours or expired; optimistic concurrency decides races."""
        now = datetime.now(timezone.utc)
        try:
            lease = await self.leases.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = client.V1Lease(metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                                  spec=self._spec(now, transitions=0, acquired=now))
            try:
                await self.leases.create_namespaced_lease(self.namespace, body)
                return True
            except ApiException as create_exc:
                if create_exc.status == 409:
                    return False
                raise
        spec = lease.spec
        mine = spec.holder_identity == self.identity
        renewed = spec.renew_time or spec.acquire_time
        expired = renewed is None or renewed + timedelta(seconds=spec.lease_duration_seconds or 0) < now
        if not (mine or expired):
            return False
        transitions = (spec.lease_transitions or 0) + (0 if mine else 1)
        lease.spec = self._spec(now, transitions, spec.acquire_time if mine else now)
        try:
            await self.leases.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def _spec(self, now: datetime, transitions: int, acquired: datetime) -> client.V1LeaseSpec:
        return client.V1LeaseSpec(holder_identity=self.identity, lease_duration_seconds=self.lease_seconds,
                                  acquire_time=acquired, renew_time=now, lease_transitions=transitions)

    async def acquire(self) -> None:
        log.info("waiting to lead as %s (Lease %s/%s)", self.identity, self.namespace, self.name)
        while not await self._attempt():
            await asyncio.sleep(self.lease_seconds / 5)
        log.info("leading as %s", self.identity)

    async def hold(self) -> None:
        """Renew until renewal fails for a whole lease period; then raise LeaseLost."""
        last_renewal = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            if await self._attempt():
                last_renewal = asyncio.get_running_loop().time()
            elif asyncio.get_running_loop().time() - last_renewal > self.lease_seconds * 2 / 3:
                raise LeaseLost(f"could not renew Lease {self.namespace}/{self.name}")

    async def release(self) -> None:
        """Give the Lease up on a clean stop (a rolling update), so that a standby leads at
        its next try instead of a whole lease period later; a crash still costs the period."""
        try:
            lease = await self.leases.read_namespaced_lease(self.name, self.namespace)
            if lease.spec.holder_identity != self.identity:
                return
            lease.spec.holder_identity = None
            lease.spec.lease_duration_seconds = 1
            lease.spec.renew_time = datetime.now(timezone.utc)
            await self.leases.replace_namespaced_lease(self.name, self.namespace, lease)
            log.info("released Lease %s/%s", self.namespace, self.name)
        except (ApiException, OSError, asyncio.TimeoutError) as exc:
            log.warning("Lease %s/%s not released (it expires instead): %s", self.namespace, self.name, exc)

    async def _attempt(self) -> bool:
        try:
            return await self.try_acquire()
        except (ApiException, OSError, asyncio.TimeoutError) as exc:
            log.warning("Lease %s/%s not reachable: %s", self.namespace, self.name, exc)
            return False
