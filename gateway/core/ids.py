"""X-Road identifiers as typed, frozen values with one parser and one printer.

The printed form joins the parts with ``/`` and percent-encodes each part on its own, as
X-Road's REST protocol does, so ``parse(str(x)) == x`` for every identifier. Parts may
contain only the characters X-Road allows (letters, digits and ``'()+,-.=?``). Anything
else is refused with a clear error instead of being normalised: a full-width look-alike of
``GOV`` must never become ``GOV`` on the way to an access check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar, Self, cast
from urllib.parse import quote, unquote_to_bytes

from gateway.core.errors import Code, GatewayError

MAX_PART_LENGTH = 255
_ALLOWED = re.compile(r"[A-Za-z0-9'()+,\-.=?]+")
# Everything X-Road allows except '?', which would start a query string in a URL path.
_SAFE_IN_PATH = "'()+,-.="


class InvalidIdentifierError(GatewayError, ValueError):
    """An identifier that does not parse; carries the code for where it was used."""

    def __init__(self, message: str, code: Code = Code.BAD_REQUEST) -> None:
        super().__init__(code, message)


def decode_part(raw: str, what: str, code: Code = Code.BAD_REQUEST) -> str:
    """Percent-decode one part and check it against X-Road's character set."""
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError):
        # Encode: a non-UTF-8 header byte reaches us as a surrogate escape.
        raise InvalidIdentifierError(f"{what} {raw!r} is not valid UTF-8", code) from None
    return check_part(text, what, code)


def check_part(text: str, what: str, code: Code = Code.BAD_REQUEST) -> str:
    """Refuse a decoded part that is empty, too long, or has a character X-Road forbids."""
    if not text:
        raise InvalidIdentifierError(f"{what} is empty", code)
    if text in (".", ".."):
        raise InvalidIdentifierError(f"{what} must not be a dot segment", code)
    if len(text) > MAX_PART_LENGTH:
        raise InvalidIdentifierError(f"{what} is longer than {MAX_PART_LENGTH} characters", code)
    if not _ALLOWED.fullmatch(text):
        bad = next(ch for ch in text if not _ALLOWED.fullmatch(ch))
        raise InvalidIdentifierError(
            f"{what} {text!r} contains {bad!r} (U+{ord(bad):04X}); only letters, digits and "
            "'()+,-.=? are allowed",
            code,
        )
    return text


def encode_part(text: str) -> str:
    """Percent-encode one part for use in a path or header."""
    return quote(text, safe=_SAFE_IN_PATH)


@lru_cache(maxsize=8192)
def _checked_text(kind: str, names: tuple[str, ...], parts: tuple[str, ...]) -> str:
    """The printed form of an id's parts, each checked (raises on a bad one)."""
    for name, part in zip(names, parts, strict=True):
        check_part(part, f"{kind} part {name}")
    return "/".join(encode_part(p) for p in parts)


@dataclass(frozen=True, slots=True)
class _Id:
    """Shared parse/print logic; subclasses name their parts in order."""

    PART_NAMES: ClassVar[tuple[str, ...]] = ()
    KIND: ClassVar[str] = "identifier"
    # The printed form, computed once: ids are printed on every message and log entry.
    _text: str = field(init=False, repr=False, compare=False)

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(getattr(self, name) for name in self.PART_NAMES)

    def __post_init__(self) -> None:
        # Ids are built on every message (parsed, and derived: a service's provider,
        # its member), always from the same few parts: the check and the printed form
        # are computed once per distinct id, a refused one never cached.
        text = _checked_text(self.KIND, self.PART_NAMES, self.parts)
        object.__setattr__(self, "_text", text)

    def __str__(self) -> str:
        return self._text

    @classmethod
    def from_parts(cls, raw_parts: list[str], code: Code = Code.BAD_REQUEST) -> Self:
        """Build from still percent-encoded parts (as split from a path)."""
        built = _from_parts_cached(cast(Any, cls), tuple(raw_parts), code)
        assert isinstance(built, cls)
        return built

    @classmethod
    def _from_raw_parts(cls, raw_parts: tuple[str, ...], code: Code) -> Self:
        if len(raw_parts) != len(cls.PART_NAMES):
            raise InvalidIdentifierError(
                f"a {cls.KIND} has {len(cls.PART_NAMES)} parts "
                f"({'/'.join(cls.PART_NAMES)}), got {len(raw_parts)}",
                code,
            )
        decoded = [
            decode_part(raw, f"{cls.KIND} part {name}", code)
            for raw, name in zip(raw_parts, cls.PART_NAMES, strict=True)
        ]
        return cls(*decoded)

    @classmethod
    def parse(cls, text: str, code: Code = Code.BAD_REQUEST) -> Self:
        parsed = _parse_cached(cast(Any, cls), text, code)
        assert isinstance(parsed, cls)
        return parsed


@dataclass(frozen=True, slots=True)
class MemberId(_Id):
    """An organisation: ``INSTANCE/CLASS/MEMBER``; owns signing keys and nodes."""

    instance: str
    member_class: str
    member_code: str

    PART_NAMES: ClassVar[tuple[str, ...]] = ("instance", "member_class", "member_code")
    KIND: ClassVar[str] = "member id"

    @property
    def object_type(self) -> str:
        return "MEMBER"

    @property
    def member(self) -> MemberId:
        return self

    def subsystem(self, code: str) -> SubsystemId:
        return SubsystemId(self.instance, self.member_class, self.member_code, code)


@dataclass(frozen=True, slots=True)
class SubsystemId(_Id):
    """An information system of a member: ``INSTANCE/CLASS/MEMBER/SUBSYSTEM``."""

    instance: str
    member_class: str
    member_code: str
    subsystem_code: str

    PART_NAMES: ClassVar[tuple[str, ...]] = (
        "instance",
        "member_class",
        "member_code",
        "subsystem_code",
    )
    KIND: ClassVar[str] = "subsystem id"

    @property
    def object_type(self) -> str:
        return "SUBSYSTEM"

    @property
    def member(self) -> MemberId:
        return _member_of(self)

    def service(self, code: str) -> ServiceId:
        return ServiceId(
            self.instance, self.member_class, self.member_code, self.subsystem_code, code
        )


ClientId = MemberId | SubsystemId


@lru_cache(maxsize=4096)
def _parse_cached(cls: Any, text: str, code: Code) -> Any:
    """Ids repeat on every message; a parse is cached (a failed one never is)."""
    return cls.from_parts(text.split("/"), code)


@lru_cache(maxsize=4096)
def _from_parts_cached(cls: Any, raw_parts: tuple[str, ...], code: Code) -> Any:
    """The service of every ``/r1/`` path is built from its raw segments: cached the
    same way (a refused one never is)."""
    return cls._from_raw_parts(raw_parts, code)


@lru_cache(maxsize=4096)
def parse_client(text: str, code: Code = Code.INVALID_CLIENT_IDENTIFIER) -> ClientId:
    """Parse ``X-Road-Client``: a member (3 parts) or a subsystem (4 parts)."""
    raw = text.strip(" \t").split("/")  # HTTP's optional white space, nothing else
    if len(raw) == 3:
        return MemberId.from_parts(raw, code)
    if len(raw) == 4:
        return SubsystemId.from_parts(raw, code)
    raise InvalidIdentifierError(
        f"a client id is INSTANCE/CLASS/MEMBER[/SUBSYSTEM], got {len(raw)} parts in {text!r}",
        code,
    )


@dataclass(frozen=True, slots=True)
class ServiceId(_Id):
    """A service of a provider subsystem: ``INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE``."""

    instance: str
    member_class: str
    member_code: str
    subsystem_code: str
    service_code: str

    PART_NAMES: ClassVar[tuple[str, ...]] = (
        "instance",
        "member_class",
        "member_code",
        "subsystem_code",
        "service_code",
    )
    KIND: ClassVar[str] = "service id"

    @property
    def provider(self) -> SubsystemId:
        return _provider_of(self)

    @property
    def member(self) -> MemberId:
        return _member_of(self.provider)


@lru_cache(maxsize=4096)
def _provider_of(service: ServiceId) -> SubsystemId:
    """A service's provider, one value per service (asked several times per message)."""
    return SubsystemId(
        service.instance, service.member_class, service.member_code, service.subsystem_code
    )


@lru_cache(maxsize=4096)
def _member_of(subsystem: SubsystemId) -> MemberId:
    """A subsystem's member, one value per subsystem."""
    return MemberId(subsystem.instance, subsystem.member_class, subsystem.member_code)


@dataclass(frozen=True, slots=True)
class NodeId(_Id):
    """A security server: ``INSTANCE/CLASS/MEMBER/SERVERCODE``, owned by a member."""

    instance: str
    member_class: str
    member_code: str
    server_code: str

    PART_NAMES: ClassVar[tuple[str, ...]] = (
        "instance",
        "member_class",
        "member_code",
        "server_code",
    )
    KIND: ClassVar[str] = "node id"

    @property
    def owner(self) -> MemberId:
        return MemberId(self.instance, self.member_class, self.member_code)


@dataclass(frozen=True, slots=True)
class GroupId(_Id):
    """A global group of clients, ``INSTANCE/GROUPCODE``, usable as an access-right subject."""

    instance: str
    group_code: str

    PART_NAMES: ClassVar[tuple[str, ...]] = ("instance", "group_code")
    KIND: ClassVar[str] = "group id"
