"""`waybillguard units|users|clients …`, `login`, `logout`, `whoami`.

Registered on the main app in cli.py::

    app.add_typer(access_cli.units_app, name="units")
    app.add_typer(access_cli.users_app, name="users")
    app.add_typer(access_cli.clients_app, name="clients")
    app.command("login")(access_cli.login)
    app.command("logout")(access_cli.logout)
    app.command("whoami")(access_cli.whoami)

Who acts: the session in `<home>/session` (or `WAYBILLGUARD_TOKEN`) if there is one,
else the local operating-system operator, who holds the keyring file already and so
may bootstrap the first administrator. Managing units, users and clients needs an
administrator session or no session at all.

Exit codes: 0 success; 1 login refused / not logged in / no such thing; 2 invalid
input or configuration; 3 not allowed.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.table import Table

from waybillguard.config import Settings
from waybillguard.domain.errors import FieldError
from waybillguard.domain.identity import ROLE_LABELS, Role
from waybillguard.entrypoints.common import HomeOpt, JsonOpt, emit_json, fail, open_home, out
from waybillguard.entrypoints.common import settings_for as _settings
from waybillguard.entrypoints.identity_json import principal_json, unit_summary_json
from waybillguard.entrypoints.session_file import (
    SessionFileError,
    clear_token,
    load_token,
    save_token,
    token_from_env,
)
from waybillguard.services import auth, identities
from waybillguard.services.activity import Actor
from waybillguard.services.app import App

units_app = typer.Typer(
    help="单位 / organisation units (hq → region → station)", no_args_is_help=True
)
users_app = typer.Typer(help="员工账户 / staff users", no_args_is_help=True)
clients_app = typer.Typer(help="合作方客户端 / partner clients", no_args_is_help=True)

# A password or secret on stdin longer than this is not one; stop reading there.
_MAX_STDIN_BYTES = 64 * 1024

_STATE_ZH = {"active": "正常", "disabled": "已停用", "locked": "已锁定待复核"}
_KIND_ZH = {"hq": "总部", "region": "区域", "station": "网点"}


# -- plumbing ------------------------------------------------------------------------------
def _client() -> str:
    return auth.client_label(f"cli@{socket.gethostname()}")


@contextmanager
def _errors(as_json: bool) -> Iterator[None]:
    """Map the services' refusals to messages and exit codes (never a traceback)."""
    try:
        yield
    except FieldError as exc:
        fail(str(exc), 2, as_json=as_json)
    except identities.NotAllowed as exc:
        fail(f"不允许 / not allowed: {exc}", 3, as_json=as_json)
    except auth.AuthError as exc:
        fail(exc.message, 1, as_json=as_json)


def _session_token(application: App, as_json: bool) -> str | None:
    try:
        return load_token(application.settings)
    except SessionFileError as exc:
        fail(str(exc), 2, as_json=as_json)


def acting(application: App, as_json: bool = False) -> tuple[Actor, auth.AuthContext | None]:
    """Who runs this command: the logged-in principal, or the local operator when no
    session is stored. A stored session that is no longer valid is an error, not a
    silent fall-back to the operator."""
    token = _session_token(application, as_json)
    if token is None:
        return Actor.local_operator(), None
    try:
        context = auth.authenticate(application, token)
    except auth.AuthError as exc:
        fail(
            f"{exc.message}（或 `waybillguard logout` / or run `waybillguard logout`）",
            1,
            as_json=as_json,
        )
    return Actor.for_principal(context.principal, _client()), context


def _stored_token(settings: Settings) -> str | None:
    """The token in the session file (not the environment's), if it can be trusted."""
    if token_from_env() is not None:
        return None
    try:
        return load_token(settings)
    except SessionFileError:
        return None


def _read_stdin(field: str, as_json: bool) -> str:
    stream = getattr(sys.stdin, "buffer", None)
    raw = stream.read(_MAX_STDIN_BYTES + 1) if stream is not None else sys.stdin.read().encode()
    if len(raw) > _MAX_STDIN_BYTES:
        fail(
            f"{field}: is longer than {identities.MAX_PASSWORD_CHARS} characters",
            2,
            as_json=as_json,
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        fail(f"{field}: standard input is not valid UTF-8", 2, as_json=as_json)
    # One trailing newline is how `echo` and here-strings end; anything else is the secret.
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


def _secret(from_stdin: bool, field: str, as_json: bool, *, confirm: bool) -> str:
    if from_stdin:
        return _read_stdin(field, as_json)
    if sys.stdin.isatty():
        value: str = typer.prompt(
            "密码 / password" if field == "password" else "密钥 / secret",
            hide_input=True,
            confirmation_prompt=confirm,
        )
        return value
    fail(
        f"{field}: give it on standard input with --{field.replace('_', '-')}-stdin",
        2,
        as_json=as_json,
    )


def _split(text: str | None) -> list[str]:
    return [part for part in (text or "").split(",") if part.strip()]


def _role(role: Role) -> str:
    return f"{ROLE_LABELS[role][0]} {role.value}"


def _one_grade(positional: int | None, option: int | None, as_json: bool) -> int:
    if (positional is None) == (option is None):
        fail("grade: give the new grade once (set-grade USER N, or --grade N)", 2, as_json=as_json)
    return positional if positional is not None else option  # type: ignore[return-value]


def _done(as_json: bool, data: dict[str, Any], text: str) -> None:
    if as_json:
        emit_json(data)
    else:
        out.print(text)


# -- units ---------------------------------------------------------------------------------
@units_app.command("add")
def units_add(
    code: Annotated[str, typer.Argument(help="Unit code, e.g. HQ, SZ, SZ-NS01.")],
    kind: Annotated[str, typer.Option("--kind", help="hq | region | station")],
    name: Annotated[str, typer.Option("--name", help="Display name, e.g. 深圳南山网点.")],
    parent: Annotated[str | None, typer.Option("--parent", help="Parent unit code.")] = None,
    covers: Annotated[
        str | None,
        typer.Option("--covers", help="Stations: district codes it delivers to, comma-separated."),
    ] = None,
    franchise: Annotated[
        bool, typer.Option("--franchise", help="A franchise station (加盟网点).")
    ] = False,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """新增单位 / Add a headquarters, region or station."""
    with open_home(home) as application, _errors(json):
        actor, _ = acting(application, json)
        unit = identities.add_unit(
            application,
            actor,
            code,
            kind,
            name,
            parent=parent,
            covers=_split(covers),
            franchise=franchise,
        )
    covered = len(_split(covers))
    _done(
        json,
        {
            "code": unit.code,
            "kind": unit.kind.value,
            "name": unit.name,
            "parent": unit.parent,
            "franchise": unit.franchise,
            "covers": sorted({c.strip() for c in _split(covers)}),
        },
        f"已新增单位 / unit added: {unit.code} ({_KIND_ZH[unit.kind.value]} {unit.kind.value}"
        f"{', 加盟 franchise' if unit.franchise else ''})"
        + (f", covers {covered} district(s)" if covered else ""),
    )


@units_app.command("list")
def units_list(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """单位列表 / List units with their districts and active members."""
    with open_home(home) as application, _errors(json):
        found = identities.list_units(application)
    if json:
        emit_json([unit_summary_json(s) for s in found])
        return
    table = Table(
        "代码 code",
        "类型 kind",
        "名称 name",
        "上级 parent",
        "覆盖 covers",
        "人员 members",
        "状态 state",
    )
    for s in found:
        covers = ",".join(s.covers[:4]) + (f" …(+{len(s.covers) - 4})" if len(s.covers) > 4 else "")
        kind = f"{_KIND_ZH[s.unit.kind.value]} {s.unit.kind.value}"
        if s.unit.franchise:
            kind += " 加盟"
        table.add_row(
            s.unit.code,
            kind,
            s.unit.name,
            s.unit.parent or "-",
            covers or "-",
            str(s.members),
            "已停用 disabled" if s.unit.disabled else "正常 active",
        )
    out.print(table)


@units_app.command("disable")
def units_disable(
    code: Annotated[str, typer.Argument()], home: HomeOpt = None, json: JsonOpt = False
) -> None:
    """停用单位 / Disable a unit: nobody in it or below it can log in."""
    with open_home(home) as application, _errors(json):
        actor, _ = acting(application, json)
        unit = identities.disable_unit(application, actor, code)
    _done(json, {"code": unit.code, "disabled": True}, f"已停用单位 / unit disabled: {unit.code}")


# -- users ---------------------------------------------------------------------------------
@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="2-32 characters: a-z 0-9 . _ -")],
    role: Annotated[str, typer.Option("--role", help=", ".join(r.value for r in Role))],
    unit: Annotated[str, typer.Option("--unit", help="Unit code.")],
    grade: Annotated[
        int | None, typer.Option("--grade", help="Permission grade 0-9 (default by role).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    device: Annotated[
        str | None, typer.Option("--device", help="Couriers: the registered device id.")
    ] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """新增员工 / Add a staff user; prints the TOTP secret once (roles above courier)."""
    password = _secret(password_stdin, "password", json, confirm=True)
    with open_home(home) as application, _errors(json):
        actor, _ = acting(application, json)
        principal, totp_secret = identities.add_user(
            application,
            actor,
            username,
            role,
            unit,
            password=password,
            grade=grade,
            device_id=device,
        )
    if json:
        emit_json({"username": principal.username, "totp_secret": totp_secret})
        return
    out.print(
        f"已新增用户 / user added: {principal.username} ({_role(principal.role)} @ "
        f"{principal.unit}, grade {principal.grade})"
    )
    if totp_secret:
        out.print(
            f"动态口令密钥（仅显示一次）/ TOTP secret (shown once): {totp_secret}\n"
            f"otpauth://totp/waybillguard:{principal.username}?secret={totp_secret}"
            "&issuer=waybillguard&digits=6&period=30"
        )
    elif principal.role is Role.COURIER and principal.device_id is None:
        out.print("尚未登记设备 / no device registered yet: `waybillguard users bind-device`")


@users_app.command("list")
def users_list(
    unit: Annotated[str | None, typer.Option("--unit", help="Only this unit.")] = None,
    role: Annotated[str | None, typer.Option("--role", help="Only this role.")] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """员工列表 / List staff users."""
    with open_home(home) as application, _errors(json):
        found = identities.list_users(application, unit=unit, role=role)
    if json:
        emit_json([principal_json(p) for p in found])
        return
    table = Table("用户 user", "角色 role", "单位 unit", "等级 grade", "状态 state")
    for p in found:
        table.add_row(
            p.username,
            _role(p.role),
            p.unit,
            str(p.grade),
            f"{_STATE_ZH[p.state.value]} {p.state.value}",
        )
    out.print(table)


@users_app.command("disable")
def users_disable(
    username: Annotated[str, typer.Argument()],
    reason: Annotated[str | None, typer.Option("--reason", max=128)] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """停用员工 / Disable a user and end their sessions."""
    with open_home(home) as application, _errors(json):
        actor, _ = acting(application, json)
        principal = identities.disable_user(application, actor, username, reason=reason)
    _done(json, principal_json(principal), f"已停用 / disabled: {principal.username}")


@users_app.command("enable")
def users_enable(
    username: Annotated[str, typer.Argument()], home: HomeOpt = None, json: JsonOpt = False
) -> None:
    """启用员工 / Re-enable a disabled user (not one locked pending review)."""
    with open_home(home) as application, _errors(json):
        actor, _ = acting(application, json)
        principal = identities.enable_user(application, actor, username)
    _done(json, principal_json(principal), f"已启用 / enabled: {principal.username}")


@users_app.command("set-grade")
def users_set_grade(
    username: Annotated[str, typer.Argument()],
    grade_arg: Annotated[int | None, typer.Argument(metavar="[GRADE]")] = None,
    grade: Annotated[int | None, typer.Option("--grade", help="New grade 0-9.")] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """调整权限等级 / Set a user's permission grade."""
    new_grade = _one_grade(grade_arg, grade, json)
    with open_home(home) as application, _errors(json):
        actor, _ = acting(application, json)
        principal = identities.set_grade(application, actor, username, new_grade)
    _done(
        json,
        principal_json(principal),
        f"已调整等级 / grade set: {principal.username} → {principal.grade}",
    )


@users_app.command("reset-password")
def users_reset_password(
    username: Annotated[str, typer.Argument()],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the new password from standard input.")
    ] = False,
    reset_totp: Annotated[
        bool, typer.Option("--reset-totp", help="Also enrol a new TOTP secret (shown once).")
    ] = False,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """重置密码 / Set a new password (ends sessions and lockouts); --reset-totp too."""
    password = _secret(password_stdin, "password", json, confirm=True)
    with open_home(home) as application, _errors(json):
        actor, _ = acting(application, json)
        totp_secret = identities.reset_password(
            application, actor, username, password, reset_totp=reset_totp
        )
    if json:
        emit_json({"username": username.strip(), "totp_secret": totp_secret})
        return
    out.print(f"已重置密码 / password reset: {username.strip()}")
    if totp_secret:
        out.print(f"新动态口令密钥（仅显示一次）/ new TOTP secret (shown once): {totp_secret}")


@users_app.command("bind-device")
def users_bind_device(
    username: Annotated[str, typer.Argument()],
    device_arg: Annotated[str | None, typer.Argument(metavar="[DEVICE]")] = None,
    device: Annotated[str | None, typer.Option("--device", help="Device id.")] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """登记设备 / Bind a courier to the device their sessions must come from."""
    if (device_arg is None) == (device is None):
        fail(
            "device: give the device id once (bind-device USER ID, or --device ID)", 2, as_json=json
        )
    chosen = device_arg if device_arg is not None else device
    assert chosen is not None
    with open_home(home) as application, _errors(json):
        actor, _ = acting(application, json)
        principal = identities.bind_device(application, actor, username, chosen)
    _done(json, principal_json(principal), f"已登记设备 / device bound: {principal.username}")


# -- partner clients -------------------------------------------------------------------------
@clients_app.command("add")
def clients_add(
    name: Annotated[str, typer.Argument(help="Client id: 2-32 characters a-z 0-9 . _ -")],
    unit: Annotated[str, typer.Option("--unit", help="Unit the partner belongs to.")],
    merchant: Annotated[str, typer.Option("--merchant", help="Merchant whose waybills it sees.")],
    fields: Annotated[
        str, typer.Option("--fields", help="Contract fields, e.g. recipient.name,recipient.phone")
    ],
    grade: Annotated[int | None, typer.Option("--grade", help="Permission grade 0-9.")] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """新增合作方 / Register a partner client; prints its secret once."""
    with open_home(home) as application, _errors(json):
        actor, _ = acting(application, json)
        principal, secret = identities.add_client(
            application, actor, name, unit, merchant, _split(fields), grade=grade
        )
    if json:
        emit_json({"client_id": principal.username, "client_secret": secret})
        return
    out.print(
        f"已新增合作方 / client added: {principal.username} (merchant {principal.merchant}, "
        f"fields {','.join(sorted(principal.contract_fields)) or '-'})\n"
        f"client_id: {principal.username}\n"
        f"client_secret（仅显示一次 / shown once）: {secret}"
    )


@clients_app.command("list")
def clients_list(
    unit: Annotated[str | None, typer.Option("--unit", help="Only this unit.")] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """合作方列表 / List partner clients."""
    with open_home(home) as application, _errors(json):
        found = identities.list_clients(application, unit=unit)
    if json:
        emit_json([principal_json(p) for p in found])
        return
    table = Table("客户端 client", "单位 unit", "商家 merchant", "字段 fields", "状态 state")
    for p in found:
        table.add_row(
            p.username,
            p.unit,
            p.merchant or "-",
            ",".join(sorted(p.contract_fields)) or "-",
            f"{_STATE_ZH[p.state.value]} {p.state.value}",
        )
    out.print(table)


@clients_app.command("disable")
def clients_disable(
    client_id: Annotated[str, typer.Argument()],
    reason: Annotated[str | None, typer.Option("--reason", max=128)] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """停用合作方 / Disable a partner client and end its sessions."""
    with open_home(home) as application, _errors(json):
        actor, _ = acting(application, json)
        principal = identities.disable_client(application, actor, client_id, reason=reason)
    _done(json, principal_json(principal), f"已停用 / disabled: {principal.username}")


# -- sessions --------------------------------------------------------------------------------
def login(
    user: Annotated[str | None, typer.Option("--user", help="Staff username.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    totp: Annotated[
        str | None, typer.Option("--totp", help="6-digit code (roles above courier).")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="Couriers: this device's id.")
    ] = None,
    client: Annotated[str | None, typer.Option("--client", help="Partner client id.")] = None,
    secret_stdin: Annotated[
        bool, typer.Option("--secret-stdin", help="Read the client secret from standard input.")
    ] = False,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """登录 / Log in; later commands act as this user (session kept in <home>/session)."""
    if (user is None) == (client is None):
        fail("give either --user (staff) or --client (partner)", 2, as_json=json)
    if client is not None and (password_stdin or totp or device):
        fail("partner clients log in with --client ID --secret-stdin", 2, as_json=json)
    if user is not None and secret_stdin:
        fail("staff log in with --user U --password-stdin", 2, as_json=json)
    settings = _settings(home)
    with open_home(home) as application, _errors(json):
        if user is not None:
            password = _secret(password_stdin, "password", json, confirm=False)
            session = auth.login(application, user, password, totp, device, _client())
        else:
            assert client is not None
            secret = _secret(secret_stdin, "client_secret", json, confirm=False)
            session = auth.client_login(application, client, secret, _client())
        previous = _stored_token(settings)
        save_token(settings, session.token)
        if previous is not None and previous != session.token:
            # The session this file held is of no further use: end it rather than leave
            # a live token behind.
            auth.logout(application, previous)
    principal = session.principal
    expires = session.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if json:
        emit_json(
            {
                "username": principal.username,
                "role": principal.role.value,
                "unit": principal.unit,
                "expires_at": expires,
                "scopes": sorted(session.scopes),
            }
        )
    else:
        out.print(
            f"登录成功 / logged in: {principal.username} ({_role(principal.role)} @ "
            f"{principal.unit}); 会话有效至 / session until {expires}"
        )
    if token_from_env() is not None:
        print(
            "注意 / note: WAYBILLGUARD_TOKEN is set and overrides the stored session",
            file=sys.stderr,
        )


def logout(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """退出登录 / End the session and forget it."""
    settings = _settings(home)
    with open_home(home) as application:
        try:
            token = load_token(settings)
        except SessionFileError:
            token = None  # an untrustworthy file is removed below, not used
        ended = auth.logout(application, token) if token is not None else False
    # A token from the environment belongs to whoever set it; only our file is removed.
    if token_from_env() is None:
        clear_token(settings)
    _done(
        json,
        {"logged_out": ended},
        "已退出登录 / logged out" if ended else "未登录 / no active session",
    )


def whoami(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """当前身份 / Who later commands act as."""
    with open_home(home) as application:
        token = _session_token(application, json)
        if token is None:
            operator = Actor.local_operator().name
            fail(
                f"未登录 / not logged in; commands act as the local operator {operator}",
                1,
                as_json=json,
            )
        try:
            context = auth.authenticate(application, token)
        except auth.AuthError as exc:
            fail(exc.message, 1, as_json=json)
    principal = context.principal
    data = {
        **principal_json(principal),
        "session": context.session_id_hash_hex_prefix,
        "expires_at": context.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mfa_at": context.mfa_at.strftime("%Y-%m-%dT%H:%M:%SZ") if context.mfa_at else None,
        "scopes": sorted(context.scopes),
    }
    _done(
        json,
        data,
        f"{principal.username} ({_role(principal.role)} @ {principal.unit}"
        f"{' ← ' + ' ← '.join(principal.unit_path) if principal.unit_path else ''}, "
        f"grade {principal.grade}); 会话有效至 / session until {data['expires_at']}",
    )
