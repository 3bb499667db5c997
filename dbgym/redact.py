"""Keeping passwords out of every error, log and progress line: the one helper.

A libpq connection string carries its password in one of three places, and every
function here knows all three, whether or not libpq could parse the string:

- URI userinfo: `postgresql://user:PASSWORD@host/db` (percent-encoded or not);
- URI query: `postgresql://host/db?password=PASSWORD&...`;
- key=value: `host=h password=PASSWORD` or `password='with spaces'`.

```python
redact_dsn("postgresql://u:s3cret@h/db")       # 'postgresql://u:***@h/db'
password_of("host=h password='a b'")            # 'a b'
redact(text, "s3cret")                          # DSN passwords masked, and "s3cret" too
with guard(dsn):                                # any exception leaving the block (and its
    psycopg.connect(dsn)                        #   __cause__/__context__ chain) is scrubbed
@scrubs("target")                               # the same for a function's DSN argument
def load(target, ...): ...
safe_connect(dsn, "cannot connect to X")        # psycopg.connect whose errors name host,
                                                #   port, user, database, never the password
connect_target(dsn_or_instance, "cannot ...")   # the same for a DSN, or target.connect()
```

libpq's own parse errors quote the string they choke on (`invalid percent-encoded token:
"s3cret%zz"`), so a message need not contain the whole DSN to leak: `guard` and `redact`
therefore also remove the known password itself (raw, percent-encoded and -decoded).
Passwords shorter than `MIN_SCRUB` characters are masked where a DSN holds them, but not
searched for in free text (that would mask every "pw" in a message).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote, quote_plus, unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict

from dbgym.errors import ConnectError, InvalidArgumentError
from dbgym.types import SupportsConnect

P = ParamSpec("P")
R = TypeVar("R")

MASK = "***"
#: Shortest password also searched for (and masked) anywhere in a text.
MIN_SCRUB = 3

# postgresql://user:password@ -- libpq ends the userinfo at the first '@' or '/'; mask
# up to the last '@' before the path, so a raw '@' in a password cannot leak its tail.
_URI_USERINFO = re.compile(
    r"(?P<head>postgres(?:ql)?://[^:/@\s\"'<>]*:)(?P<pw>[^/\s\"'<>]*)(?P<at>@)", re.I
)
# password=... in key=value strings and URI queries (also PGPASSWORD=... in env dumps).
_KEY_VALUE = re.compile(
    r"(?P<head>(?<![\w.])(?:pg)?password\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'?|[^\s'\"&]+)",
    re.I,
)


def redact_dsn(dsn: str) -> str:
    """`dsn` (URI or key=value, parsable or not) with its password replaced by `***`;
    also masks a password found anywhere else in the string (e.g. quoted in a query)."""
    return redact(dsn, password_of(dsn))


def password_of(dsn: str) -> str | None:
    """The password `dsn` holds (None: none), also from a string libpq cannot parse."""
    if not isinstance(dsn, str):
        return None
    with contextlib.suppress(Exception):
        found = conninfo_to_dict(dsn).get("password")
        return None if found is None else str(found)
    match = _URI_USERINFO.search(dsn)
    if match:
        return match.group("pw")
    match = _KEY_VALUE.search(dsn)
    if match:
        value = match.group("pw")
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:].removesuffix("'"))
        return value
    return None


def _forms(password: str) -> set[str]:
    """How `password` may appear in a text: as is, percent-encoded, percent-decoded."""
    return {password, quote(password, safe=""), quote_plus(password), unquote(password)}


def redact(text: str, *passwords: str | None) -> str:
    """`text` with every DSN password masked and each of `passwords` (every form of it)
    replaced by `***`."""
    if not isinstance(text, str) or not text:
        return text
    out = _URI_USERINFO.sub(lambda m: m.group("head") + MASK + m.group("at"), text)
    out = _KEY_VALUE.sub(lambda m: m.group("head") + MASK, out)
    forms: set[str] = set()
    for password in passwords:
        if password and len(password) >= MIN_SCRUB:
            forms |= _forms(password)
    for form in sorted(forms, key=len, reverse=True):  # longest first: no partial leftovers
        if len(form) >= MIN_SCRUB:
            out = out.replace(form, MASK)
    return out


def secrets_of(dsns: Iterable[str | None], passwords: Iterable[str | None] = ()) -> list[str]:
    """The passwords to scrub: each DSN's own password (a DSN without one contributes
    nothing) and each of `passwords`."""
    found = (password_of(dsn) for dsn in dsns if dsn)
    return [secret for secret in (*found, *passwords) if secret]


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend(x for x in (e.__cause__, e.__context__) if x is not None)
        group = getattr(e, "exceptions", None)  # an ExceptionGroup's members
        if isinstance(group, tuple):
            todo.extend(x for x in group if isinstance(x, BaseException))


def _leaks(value: object, passwords: tuple[str | None, ...]) -> bool:
    """Whether repr(value) shows a password (e.g. psycopg's finished PGconn shows the
    connection's password among its options)."""
    try:
        text = repr(value)
    except Exception:
        return False
    return redact(text, *passwords) != text


def scrub_exception(exc: BaseException, *passwords: str | None) -> BaseException:
    """Redact (in place) the message of `exc` and of every exception in its
    __cause__/__context__ chain: args, notes, and string attributes such as
    `log_lines`; an attribute whose repr shows a password (psycopg keeps the failed
    connection, password included, in `Error.pgconn`) is dropped. Returns `exc`, so
    `raise Error(...) from scrub_exception(e, pw)` works."""
    for e in _chain(exc):
        with contextlib.suppress(Exception):  # some C exceptions refuse new args
            e.args = tuple(redact(a, *passwords) if isinstance(a, str) else a for a in e.args)
        notes = getattr(e, "__notes__", None)
        if isinstance(notes, list):
            notes[:] = [redact(n, *passwords) if isinstance(n, str) else n for n in notes]
        for name, value in list(vars(e).items()) if hasattr(e, "__dict__") else []:
            if isinstance(value, str):
                with contextlib.suppress(Exception):
                    setattr(e, name, redact(value, *passwords))
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                with contextlib.suppress(Exception):
                    setattr(e, name, [redact(v, *passwords) for v in value])
            elif value is not None and _leaks(value, passwords):
                with contextlib.suppress(Exception):
                    setattr(e, name, None)
        if isinstance(e, OSError):
            for name in ("strerror", "filename", "filename2"):
                value = getattr(e, name, None)
                if isinstance(value, str):
                    with contextlib.suppress(Exception):
                        setattr(e, name, redact(value, *passwords))
    return exc


def _secret_text(value: object) -> str | None:
    """A DSN or password argument as text: a string, or an object's `.dsn`."""
    if isinstance(value, str):
        return value
    dsn = getattr(value, "dsn", None)
    return dsn if isinstance(dsn, str) else None


def scrubs(*params: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: any exception leaving the function is scrubbed (with its chain) of the
    passwords its arguments `params` carry (DSN strings, objects with a `.dsn`, passwords)
    and of every DSN password in its text."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except BaseException as exc:
                try:
                    bound = signature.bind_partial(*args, **kwargs).arguments
                except TypeError:
                    bound = {}
                texts = [_secret_text(bound.get(name)) for name in params]
                scrub_exception(exc, *secrets_of(texts))
                raise

        return wrapper

    return decorate


@contextlib.contextmanager
def guard(*dsns: str | None) -> Iterator[None]:
    """Scrub any exception that leaves the block (and its chain) of the passwords of
    `dsns` and of every DSN password it quotes."""
    try:
        yield
    except BaseException as exc:
        scrub_exception(exc, *secrets_of(dsns))
        raise


# -- connecting without leaking -----------------------------------------------------------

_WHERE_KEYS = (("host", "host"), ("port", "port"), ("user", "user"), ("dbname", "database"))


def describe_dsn(dsn: str, **overrides: Any) -> dict[str, str]:
    """host, port, user and dbname of `dsn` (and of psycopg.connect keyword `overrides`),
    never the password; empty when `dsn` does not parse."""
    params: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        params = dict(conninfo_to_dict(dsn))
    params.update({k: v for k, v in overrides.items() if k in dict(_WHERE_KEYS)})
    return {key: str(params[key]) for key, _ in _WHERE_KEYS if params.get(key) is not None}


#: SQLSTATEs of the server's refusals of a login, by their (C locale) message: libpq
#: reports a failed connection as text only.
_LOGIN_SQLSTATES = (
    ("password authentication failed", "28P01"),
    ("no pg_hba.conf entry", "28000"),
    ("role .* does not exist", "28000"),
    ("database .* does not exist", "3D000"),
    ("permission denied for database", "42501"),
    ("too many clients already", "53300"),
    ("remaining connection slots are reserved", "53300"),
    ("the database system is (starting up|shutting down|in recovery mode)", "57P03"),
)


def login_sqlstate(message: str) -> str | None:
    """The SQLSTATE of a server's FATAL login refusal in `message` (None: not one)."""
    for pattern, code in _LOGIN_SQLSTATES:
        if re.search(rf"FATAL:\s+{pattern}", message):
            return code
    return None


def connect_error(
    dsn: str, exc: BaseException, what: str = "cannot connect", **overrides: Any
) -> ConnectError:
    """A ConnectError for `exc` (a failed connection to `dsn`): names host, port, user,
    database, the SQLSTATE and the server's message; never the password."""
    where = describe_dsn(dsn, **overrides)
    shown = ", ".join(f"{label} {where[key]}" for key, label in _WHERE_KEYS if key in where)
    sqlstate = getattr(exc, "sqlstate", None) or login_sqlstate(str(exc))
    reason = redact(str(exc).strip(), password_of(dsn), overrides.get("password"))
    port = where.get("port", "")
    return ConnectError(
        f"{what} ({shown or redact_dsn(dsn)})"
        + (f": SQLSTATE {sqlstate}" if sqlstate else "")
        + f": {reason}",
        host=where.get("host"),
        port=int(port) if port.isdigit() else None,
        user=where.get("user"),
        database=where.get("dbname"),
        sqlstate=sqlstate if isinstance(sqlstate, str) else None,
    )


def safe_connect(dsn: str, what: str = "cannot connect", **kwargs: Any) -> psycopg.Connection[Any]:
    """psycopg.connect(dsn, **kwargs) whose errors name the server, never the password:
    InvalidArgumentError for a connection string libpq cannot parse, ConnectError (an
    InstanceError) when the server cannot be reached or refuses the login. `what`
    starts the message ("cannot connect to load TPC-H")."""
    secrets = secrets_of([dsn], [kwargs.get("password")])
    try:
        return psycopg.connect(dsn, **kwargs)
    except psycopg.ProgrammingError as exc:  # libpq cannot parse the connection string
        scrub_exception(exc, *secrets)
        raise InvalidArgumentError(
            f"{what}: invalid connection string {redact_dsn(dsn)!r}: "
            + redact(str(exc).strip(), *secrets)
        ) from exc
    except psycopg.OperationalError as exc:
        scrub_exception(exc, *secrets)
        raise connect_error(dsn, exc, what, **kwargs) from exc


def connect_target(
    target: SupportsConnect | str, what: str = "cannot connect", **kwargs: Any
) -> psycopg.Connection[Any]:
    """A new connection to `target`: a DSN through `safe_connect`, else
    `target.connect(**kwargs)` (PostgresInstance and DbSession name the server without
    the password themselves)."""
    if isinstance(target, str):
        return safe_connect(target, what, **kwargs)
    return target.connect(**kwargs)
