"""/auth/token, /auth/whoami and (standalone mode) /users for admins."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pravah_api import models
from pravah_api.auth import StandaloneAuth, principal_of
from pravah_api.errors import ApiError, conflict, forbidden, not_found
from pravah_api.keys import AUTH, PRINCIPAL, STORE
from pravah_api.routing import Operation, Param, read_model, respond

USER_PARAM = Param("username", "path", {"type": "string", "minLength": 1, "maxLength": 128}, "User name.", True)


def user_out(row: dict[str, Any]) -> models.User:
    def stamp(value) -> str:
        return value.isoformat().replace("+00:00", "Z")

    return models.User(username=row["username"], role=row["role"], namespaces=list(row["namespaces"]),
                       disabled=row["disabled"], createdAt=stamp(row["created_at"]),
                       updatedAt=stamp(row["updated_at"]))


async def issue_token(request: web.Request) -> web.Response:
    auth: StandaloneAuth = request.app[AUTH]
    credentials, _ = await read_model(request, models.TokenRequest)
    token = await auth.issue_token(credentials.username, credentials.password, request.remote or "unknown")
    return respond(models.TokenResponse(access_token=token, expires_in=auth.ttl))


async def whoami(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    auth = request.app[AUTH]
    return respond(models.WhoAmI(
        name=principal.name, groups=list(principal.groups), mode=auth.mode, role=principal.role,
        namespaces=list(principal.namespaces) if principal.namespaces is not None else None))


async def admin(request: web.Request) -> StandaloneAuth:
    principal = await principal_of(request)
    if principal.role != "admin":
        raise forbidden(f"{principal.name} may not manage users (admins only)")
    return request.app[AUTH]


async def list_users(request: web.Request) -> web.Response:
    await admin(request)
    rows = await request.app[STORE].users()
    return respond(models.UserList(items=[user_out(row) for row in rows]))


async def create_user(request: web.Request) -> web.Response:
    auth = await admin(request)
    user, _ = await read_model(request, models.UserCreate)
    password_hash = await auth.hash_password(user.password)
    row = await request.app[STORE].create_user(user.username, password_hash, user.role, user.namespaces)
    if row is None:
        raise conflict(f"user {user.username!r} already exists", "username")
    return respond(user_out(row), 201, {"Location": f"/users/{user.username}"})


async def get_user(request: web.Request) -> web.Response:
    await admin(request)
    row = await request.app[STORE].user(request.match_info["username"])
    if row is None:
        raise not_found(f"no user {request.match_info['username']!r}", "username")
    return respond(user_out(row))


async def update_user(request: web.Request) -> web.Response:
    auth = await admin(request)
    username = request.match_info["username"]
    update, _ = await read_model(request, models.UserUpdate)
    changes: dict[str, Any] = update.model_dump(exclude_unset=True, exclude={"password"})
    if None in changes.values():
        field = next(key for key, value in changes.items() if value is None)
        raise ApiError(422, f"{field} may not be null", field)
    if changes.get("disabled") and username == request[PRINCIPAL].name:
        raise conflict("admins cannot disable themselves", "disabled")
    if update.password is not None:
        changes["password_hash"] = await auth.hash_password(update.password)
    revoke = update.password is not None or changes.get("disabled") is True
    row = await request.app[STORE].update_user(username, changes, revoke_tokens=revoke)
    if row is None:
        raise not_found(f"no user {username!r}", "username")
    auth.invalidate(username)
    return respond(user_out(row))


async def delete_user(request: web.Request) -> web.Response:
    auth = await admin(request)
    username = request.match_info["username"]
    if username == request[PRINCIPAL].name:
        raise conflict("admins cannot delete themselves", "username")
    if not await request.app[STORE].delete_user(username):
        raise not_found(f"no user {username!r}", "username")
    auth.invalidate(username)
    return web.Response(status=204)


COMMON_ROUTES = [
    Operation("GET", "/auth/whoami", whoami, "Who the token belongs to", "auth", {200: models.WhoAmI}),
]
STANDALONE_ROUTES = [
    Operation("POST", "/auth/token", issue_token, "Exchange a user name and password for a short-lived JWT",
              "auth", {200: models.TokenResponse, 401: models.ErrorResponse, 429: models.ErrorResponse},
              body=models.TokenRequest, public=True,
              description="Failed logins are limited per user name and per client address: beyond the limit "
                          "every attempt, even with the right password, is answered 429 with Retry-After."),
    Operation("GET", "/users", list_users, "List users (admins)", "users", {200: models.UserList}),
    Operation("POST", "/users", create_user, "Create a user (admins)", "users", {201: models.User},
              body=models.UserCreate),
    Operation("GET", "/users/{username}", get_user, "A user (admins)", "users", {200: models.User},
              params=(USER_PARAM,)),
    Operation("PATCH", "/users/{username}", update_user,
              "Change a user's password, role or namespaces, or disable it (admins)",
              "users", {200: models.User}, body=models.UserUpdate, params=(USER_PARAM,)),
    Operation("DELETE", "/users/{username}", delete_user, "Delete a user (admins)", "users", {204: None},
              params=(USER_PARAM,)),
]
