"""Authentication and authorization: two modes behind one interface.

    principal = await auth.authenticate(request)             # 401 when it fails
    await auth.authorize(principal, "create", namespace)      # 403 when not allowed
    await auth.namespaces_for(principal, "list")              # None = every namespace

* kubernetes: the caller's bearer token is checked with a TokenReview, and every action
  with a SubjectAccessReview on `pravahjobs` (group pravah.io) in the target namespace, so
  REST obeys the same RBAC as kubectl. Answers are reused for a few seconds, as the API
  server does for its own webhook authenticators. PravahJobs themselves are then touched
  with the caller's own token (`acts_as_caller`, see jobs.py).
* standalone: users live in PostgreSQL (argon2 password hashes); POST /auth/token issues
  short-lived HS256 JWTs; roles viewer < submitter < admin; each user is bound to
  namespaces (admins act in all). The user's role and namespaces are re-read (cached for a
  few seconds) on every request, so a changed or deleted user loses access at once.

Verbs are Kubernetes verbs: get, list, watch, create, patch (cancel), delete (purge).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from kubernetes_asyncio.client.exceptions import ApiException

from pravah_api.errors import ApiError, forbidden, unauthenticated
from pravah_api.k8s import Kube
from pravah_api.keys import AUTH, PRINCIPAL
from pravah_api.logins import LoginLimits
from pravah_api.settings import ApiSettings
from pravah_api.store import ApiStore

ROLE_VERBS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"get", "list", "watch"}),
    "submitter": frozenset({"get", "list", "watch", "create", "patch", "delete"}),
    "admin": frozenset({"get", "list", "watch", "create", "patch", "delete", "manage-users"}),
}
MAX_CACHE = 10_000


@dataclass(frozen=True)
class Principal:
    name: str
    groups: tuple[str, ...] = ()
    uid: str | None = None
    extra: dict[str, list[str]] = field(default_factory=dict, hash=False, compare=False)
    role: str | None = None  # standalone mode
    namespaces: tuple[str, ...] | None = None  # standalone mode


class TtlCache:
    """A small time-bounded memo (answers of reviews and user look-ups)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.entries: dict[Any, tuple[float, Any]] = {}
        self.loading: dict[Any, asyncio.Future] = {}

    async def get_or_load(self, key: Any, load: Callable[[], Awaitable[Any]]) -> Any:
        """The cached value, or the loaded one; concurrent misses of one key load it once."""
        found, value = self.get(key)
        if found:
            return value
        pending = self.loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self.loading[key] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            self.loading.pop(key, None)
        self.put(key, value)
        future.set_result(value)
        return value

    def get(self, key: Any) -> tuple[bool, Any]:
        entry = self.entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, key: Any, value: Any) -> None:
        if self.seconds <= 0:
            return
        if len(self.entries) >= MAX_CACHE:
            now = time.monotonic()
            self.entries = {k: v for k, v in self.entries.items() if v[0] >= now}
            if len(self.entries) >= MAX_CACHE:
                self.entries.clear()
        self.entries[key] = (time.monotonic() + self.seconds, value)

    def clear(self) -> None:
        self.entries.clear()


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated()
    return token.strip()


class Authenticator:
    mode: str
    # Whether PravahJobs (and the Secrets they name) are touched with the caller's own
    # bearer token: only where callers are Kubernetes users.
    acts_as_caller = False

    async def authenticate(self, request: web.Request) -> Principal:
        raise NotImplementedError

    async def authorize(self, principal: Principal, verb: str, namespace: str | None) -> None:
        """Raise 403 unless `principal` may `verb` pravahjobs in `namespace` (None: all namespaces)."""
        if not await self.allowed(principal, verb, namespace):
            where = f"in namespace {namespace!r}" if namespace else "in all namespaces"
            raise forbidden(f"{principal.name} may not {verb} pravahjobs {where}")

    async def allowed(self, principal: Principal, verb: str, namespace: str | None) -> bool:
        raise NotImplementedError

    async def namespaces_for(self, principal: Principal, verb: str) -> list[str] | None:
        """The namespaces where `verb` is allowed; None when it is allowed in all of them."""
        raise NotImplementedError


class KubernetesAuth(Authenticator):
    mode = "kubernetes"
    acts_as_caller = True

    def __init__(self, kube: Kube, cache_seconds: float):
        self.kube = kube
        self.tokens = TtlCache(cache_seconds)
        self.reviews = TtlCache(cache_seconds)

    async def authenticate(self, request: web.Request) -> Principal:
        token = bearer_token(request)
        async def review() -> Principal | None:
            status = await self.kube.token_review(token)
            if not status.get("authenticated"):
                return None
            user = status.get("user") or {}
            return Principal(name=user.get("username") or "", groups=tuple(user.get("groups") or ()),
                             uid=user.get("uid"), extra=user.get("extra") or {})

        principal = await self.tokens.get_or_load(hashlib.sha256(token.encode()).hexdigest(), review)
        if principal is None:
            raise unauthenticated("the bearer token was not accepted by the Kubernetes API server")
        return principal

    async def allowed(self, principal: Principal, verb: str, namespace: str | None) -> bool:
        async def review() -> bool:
            allowed, _ = await self.kube.access_review(principal.name, list(principal.groups), principal.uid,
                                                       principal.extra, verb, namespace)
            return allowed

        return await self.reviews.get_or_load((principal.name, principal.groups, principal.uid, verb, namespace),
                                              review)

    async def namespaces_for(self, principal: Principal, verb: str) -> list[str] | None:
        if await self.allowed(principal, verb, None):
            return None
        names = await self.kube.namespaces()  # not cached: a namespace made a moment ago counts
        limit = asyncio.Semaphore(16)

        async def check(namespace: str) -> bool:
            async with limit:
                return await self.allowed(principal, verb, namespace)

        answers = await asyncio.gather(*(check(namespace) for namespace in names))
        return [namespace for namespace, ok in zip(names, answers) if ok]


class StandaloneAuth(Authenticator):
    """Users in PostgreSQL, JWTs signed here.

    Logins are bounded twice: at most `api_hash_concurrency` argon2 hashes run at once (each
    takes argon2's memory cost, 64 MiB by default, so memory stays bounded whatever the
    number of parallel logins), and failed logins are limited per user name and per client
    address (`LoginLimits`).

    A token carries its user's token generation; a password change or disabling the user
    increments it, and a token of another generation, or of a disabled user, is refused.
    The replica that makes the change drops its cached row at once; other replicas keep
    theirs until it expires, so there a revoked token works for at most the cache's few
    seconds.
    """

    mode = "standalone"

    def __init__(self, settings: ApiSettings, store: ApiStore):
        if settings.api_jwt_secret is None or len(settings.api_jwt_secret.get_secret_value()) < 32:
            raise ValueError("standalone mode needs PRAVAH_API_JWT_SECRET of at least 32 characters")
        self.secret = settings.api_jwt_secret.get_secret_value()
        self.ttl = settings.api_jwt_ttl_seconds
        self.issuer = settings.api_jwt_issuer
        self.store = store
        self.hasher = PasswordHasher()
        self.hashing = asyncio.Semaphore(settings.api_hash_concurrency)
        self.logins = LoginLimits(settings.api_login_user_failures, settings.api_login_address_failures,
                                  settings.api_login_window_seconds)
        self.users = TtlCache(min(settings.api_auth_cache_seconds, 5.0))
        self._dummy_hash: str | None = None

    # -- passwords and tokens --------------------------------------------------------------

    async def hash_password(self, password: str) -> str:
        async with self.hashing:
            return await asyncio.to_thread(self.hasher.hash, password)

    def _matches(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def issue_token(self, username: str, password: str, address: str) -> str:
        await self.logins.check(username, address)  # refused at once, without waiting for a hash slot
        async with self.hashing:
            # Again: failures counted while this request waited. Checking and counting inside
            # the slot lets at most api_hash_concurrency - 1 failures past the limit.
            await self.logins.check(username, address)
            user = await self.store.user(username)
            if user is None and self._dummy_hash is None:
                self._dummy_hash = await asyncio.to_thread(self.hasher.hash, "not a password of anyone")
            # An unknown user costs a verification too, so the time taken does not tell who exists.
            matched = await asyncio.to_thread(self._matches, user["password_hash"] if user else self._dummy_hash,
                                              password)
            if user is None or not matched:
                await self.logins.failed(username, address)
                raise unauthenticated("invalid username or password")
        if user["disabled"]:
            raise unauthenticated(f"user {username!r} is disabled")
        now = int(time.time())
        claims = {"sub": username, "iss": self.issuer, "iat": now, "nbf": now, "exp": now + self.ttl,
                  "gen": user["token_generation"]}
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def invalidate(self, username: str) -> None:
        self.users.entries.pop(username, None)

    # -- the interface ---------------------------------------------------------------------

    async def authenticate(self, request: web.Request) -> Principal:
        token = bearer_token(request)
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"], issuer=self.issuer,
                                options={"require": ["sub", "exp", "iat", "gen"]})
        except jwt.ExpiredSignatureError:
            raise unauthenticated("the token has expired; get a new one from POST /auth/token") from None
        except jwt.PyJWTError:
            raise unauthenticated("the token is not valid") from None
        username = str(claims["sub"])
        user = await self.users.get_or_load(username, lambda: self.store.user(username))
        if user is None:
            raise unauthenticated("the token's user no longer exists")
        if user["disabled"]:
            raise unauthenticated(f"user {username!r} is disabled")
        if claims["gen"] != user["token_generation"]:
            raise unauthenticated("the token was revoked (the user's password changed or the user was disabled "
                                  "since it was issued); get a new one from POST /auth/token")
        return Principal(name=username, groups=(f"pravah:{user['role']}",), role=user["role"],
                         namespaces=tuple(user["namespaces"]))

    async def allowed(self, principal: Principal, verb: str, namespace: str | None) -> bool:
        if verb not in ROLE_VERBS.get(principal.role or "", frozenset()):
            return False
        if principal.role == "admin":
            return True
        return namespace is not None and namespace in (principal.namespaces or ())

    async def namespaces_for(self, principal: Principal, verb: str) -> list[str] | None:
        if principal.role == "admin":
            return None
        if verb not in ROLE_VERBS.get(principal.role or "", frozenset()):
            return []
        return list(principal.namespaces or ())


def authenticator(settings: ApiSettings, kube: Kube, store: ApiStore) -> Authenticator:
    if settings.api_auth_mode == "standalone":
        return StandaloneAuth(settings, store)
    return KubernetesAuth(kube, settings.api_auth_cache_seconds)


async def principal_of(request: web.Request) -> Principal:
    """The authenticated caller of this request (authenticated once per request)."""
    principal = request.get(PRINCIPAL)
    if principal is None:
        try:
            principal = await request.app[AUTH].authenticate(request)
        except ApiException as exc:
            raise ApiError(503, f"cannot check the token with the Kubernetes API server ({exc.status})") from None
        request[PRINCIPAL] = principal
    return principal
