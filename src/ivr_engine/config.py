"""Settings, read from the environment (prefix ``IVR_``) or a dotenv-style file.

Secrets (database URL, ARI password, AMI secret, API token) have no defaults: a production
engine refuses to start until they are given. Every setting is listed in the README.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal

from phonenumbers import SUPPORTED_REGIONS
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ivr_engine.domain.money import Tariff, make_tariff
from ivr_engine.domain.numbers import DEFAULT_COUNTRIES, DEFAULT_TYPES, DialPolicy, NumberType
from ivr_engine.errors import ConfigError

PriorityPolicy = Literal["fifo", "new_first"]


class ServiceNumber(BaseModel):
    """A number clients call (as dialled into the ``ivr-inbound`` context)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    language: Literal["en", "it"] = "en"
    # "0" (first available expert) picks among the experts of this category; "" is all.
    category: str = ""
    # How this number's callers are ordered in a waiting list; None: IVR_PRIORITY_POLICY.
    policy: PriorityPolicy | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IVR_", extra="ignore")

    # PostgreSQL
    database_url: SecretStr = Field(description="asyncpg DSN, e.g. postgresql://u:p@host/db")
    # Where Asterisk's cel_pgsql writes Channel Event Logging (table ``cel``): what Asterisk
    # itself recorded of each channel. Often the engine's own database.
    cel_database_url: SecretStr | None = Field(
        None, description="DSN of the database holding Asterisk's cel table (default: database_url)"
    )

    # Asterisk REST Interface
    ari_url: str = "http://127.0.0.1:8088/ari"
    ari_user: str = "ivr-engine"
    ari_password: SecretStr
    ari_app: str = "ivr-engine"
    ari_rest_over_websocket: bool = Field(
        False,
        description="send ARI requests on the event WebSocket when Asterisk takes them there"
        " (22.4+, 20.14+); false: always HTTP",
    )

    # Asterisk Manager Interface (health check, Asterisk restart detection)
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_user: str = "ivr-engine"
    ami_secret: SecretStr

    # HTTP API
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    api_token: SecretStr

    # Behind a reverse proxy: the addresses (or networks) whose X-Forwarded-For and
    # X-Forwarded-Proto are believed; empty, none is (the TCP peer is the client).
    trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = ()
    # A bearer token that reads /metrics only (the API token reads it too); no default.
    metrics_token: SecretStr | None = None

    # Web control panel (same server as the API)
    panel_secure_cookie: bool = Field(
        True, description="session cookie only over HTTPS (false only for plain-HTTP tests)"
    )
    session_hours: float = Field(12.0, gt=0, description="a panel sign-in lasts this long")
    login_max_failures: int = Field(5, ge=1, description="wrong sign-ins before a lockout")
    login_lockout_minutes: int = Field(15, ge=1, description="lockout and counting window")

    # Telephony
    dial_routes: dict[str, str] = Field(
        default_factory=lambda: {"*": "PJSIP/{number}@ivr-trunk"},
        description="number prefix -> Asterisk dial string; '*' is the fallback",
    )
    caller_id: str = ""
    ring_timeout: float = Field(30.0, gt=0, description="seconds a phone may ring")
    retry_delay: float = Field(300.0, ge=0, description="seconds before calling an expert again")
    max_attempts: int = Field(3, ge=1, description="expert call attempts before a request is lost")
    prompt_tries: int = Field(3, ge=1, description="times the accept/refuse prompt is offered")
    digit_timeout: float = Field(8.0, gt=0, description="seconds to wait for a key after a prompt")
    sound_prefix: str = "ivr-engine"
    default_language: str = "en"
    # Answering-machine detection (Asterisk's AMD()) of experts without the accept-by-key
    # prompt: passed as AMD()'s arguments. The README explains the trade-off.
    amd_initial_silence_ms: int = Field(
        2500, ge=100, le=60000, description="silence before any word longer than this: machine"
    )
    amd_greeting_ms: int = Field(
        1500, ge=100, le=60000, description="speech of the greeting longer than this: machine"
    )
    amd_after_greeting_silence_ms: int = Field(
        800, ge=100, le=60000, description="silence this long after the greeting: a person"
    )
    amd_total_analysis_ms: int = Field(
        5000, ge=500, le=60000, description="no decision within this long: not a person"
    )
    amd_max_words: int = Field(3, ge=1, le=100, description="more words than this: machine")
    offer_fanout: int = Field(
        3, ge=1, le=20, description="experts offered a category request at the same time"
    )
    request_ttl_hours: float = Field(
        12.0, gt=0, description="a request nobody took within this long expires"
    )
    client_attempts: int = Field(
        3, ge=1, le=10, description="calls to the client after an expert accepted"
    )
    client_retry_delay: float = Field(
        20.0, ge=0, description="seconds between two calls to the client (the expert holds)"
    )

    pause_minutes: int = Field(20, ge=1, le=24 * 60, description="length of a pause")
    planning_number: str = Field(
        "0694801744", description="the number experts call for their phone menu"
    )
    pin_max_failures: int = Field(3, ge=1, description="wrong PINs before the menu locks")
    pin_lockout_minutes: int = Field(15, ge=1, description="the first PIN lockout's length")
    pin_lockout_max_hours: float = Field(
        24.0, gt=0, description="each further lockout doubles, up to this"
    )
    pin_quiet_hours: float = Field(
        24.0, gt=0, description="wrong PINs are forgotten after this long without one"
    )
    line_test_required_hours: float = Field(
        0.0,
        ge=0,
        description="going available needs a passed line test this recent (0: not needed)",
    )

    # Clients calling in (flows/service_line.py)
    service_numbers: dict[str, ServiceNumber] = Field(
        default_factory=dict,
        description='numbers clients call, e.g. {"0200000001": {"language": "it",'
        ' "category": "tarot", "policy": "new_first"}}',
    )
    priority_policy: PriorityPolicy = Field(
        "fifo", description="waiting-list order for API requests and numbers without a policy"
    )
    hold_announce_seconds: float = Field(
        30.0, ge=1, description="a holding caller hears their position this often"
    )
    missed_callback_minutes: float = Field(
        15.0, gt=0, description="a missed call is called back within this long"
    )
    default_consultation_minutes: float = Field(
        10.0, gt=0, description="the wait estimate's consultation length with no history"
    )

    # Restarts, crashes and several engines
    lease_seconds: float = Field(
        15.0, ge=3, description="an engine silent this long is dead: its calls are adopted"
    )
    drain_seconds: float = Field(
        30.0, ge=0, description="on SIGTERM, calls not yet bridged may finish for this long"
    )
    rtp_timeout: float = Field(
        30.0,
        ge=0,
        description="Asterisk's rtp_timeout (pjsip.conf): a leg it hangs up for silence is"
        " billed only until its media stopped, this long before the hangup",
    )
    max_consultation_minutes: float = Field(
        120.0, gt=0, description="a consultation is ended after this long (warned 1 min before)"
    )

    # Money (EUR). Amounts are Decimal; the rounding rule lives in domain/money.py.
    rate_min: Decimal = Field(Decimal("0.10"), ge=0, description="lowest rate an expert may set")
    rate_max: Decimal = Field(Decimal("100.00"), gt=0, description="highest rate")
    billing_granularity: int = Field(1, ge=1, description="billed time is rounded up to this")
    billing_minimum: int = Field(0, ge=0, description="seconds billed at least, once bridged")
    transfer_cost_mobile: Decimal = Field(Decimal("0.20"), ge=0, description="EUR/min")
    transfer_cost_fixed: Decimal = Field(Decimal("0.01"), ge=0, description="EUR/min")
    commission_percent: Decimal = Field(Decimal("0"), ge=0, le=100)
    phone_region: str = Field("IT", description="region of numbers not written in E.164")
    # Which numbers may be dialled at all (domain/numbers.py): the countries and the types.
    dial_countries: Annotated[tuple[str, ...], NoDecode] = tuple(sorted(DEFAULT_COUNTRIES))
    dial_number_types: Annotated[tuple[NumberType, ...], NoDecode] = tuple(sorted(DEFAULT_TYPES))

    # Email (the outbox sender)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_user: str = ""
    smtp_password: SecretStr = SecretStr("")
    mail_from: str = "ivr-engine@localhost"
    public_url: str = Field("http://127.0.0.1:8080", description="base of links in emails")
    link_secret: SecretStr = Field(description="HMAC key of the links in emails")
    link_ttl: float = Field(3600.0, gt=0, description="seconds a link in an email stays valid")

    # The engine process
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop", description="the event loop `serve` runs on (asyncio: the standard one)"
    )

    # Logging
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @model_validator(mode="after")
    def _planning_number_apart(self) -> Settings:
        if self.planning_number in self.service_numbers:
            raise ValueError("the planning number cannot also be a service number")
        return self

    def policy_of(self, number: str | None) -> PriorityPolicy:
        """The waiting-list order for requests entering through ``number`` (None: the API)."""
        service = self.service_numbers.get(number or "")
        return (service.policy if service else None) or self.priority_policy

    @property
    def cel_dsn(self) -> str:
        """The DSN to read Asterisk's CEL rows from."""
        return (self.cel_database_url or self.database_url).get_secret_value()

    def tariff(self, *, rate: Decimal, category: str, expert_number: str) -> Tariff:
        """The tariff a consultation starting now freezes (the call flow, and the panel
        showing an expert what a number or rate would mean)."""
        return make_tariff(
            rate=rate,
            category=category,
            expert_number=expert_number,
            region=self.phone_region,
            mobile_cost=self.transfer_cost_mobile,
            fixed_cost=self.transfer_cost_fixed,
            commission_percent=self.commission_percent,
            granularity_seconds=self.billing_granularity,
            minimum_seconds=self.billing_minimum,
        )

    @property
    def amd_arguments(self) -> str:
        """AMD()'s arguments (initialSilence, greeting, afterGreetingSilence,
        totalAnalysisTime, minimumWordLength, betweenWordsSilence, maximumNumberOfWords);
        the empty ones keep amd.conf's values."""
        return (
            f"{self.amd_initial_silence_ms},{self.amd_greeting_ms},"
            f"{self.amd_after_greeting_silence_ms},{self.amd_total_analysis_ms},,,"
            f"{self.amd_max_words}"
        )

    @property
    def dial_policy(self) -> DialPolicy:
        return DialPolicy(
            region=self.phone_region,
            countries=frozenset(self.dial_countries),
            types=frozenset(self.dial_number_types),
        )

    @field_validator("dial_countries", "dial_number_types", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):  # "IT, SM, VA" as written in the environment
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("phone_region", "dial_countries")
    @classmethod
    def _known_regions(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        unknown = sorted(
            {value} - SUPPORTED_REGIONS
            if isinstance(value, str)
            else set(value) - SUPPORTED_REGIONS
        )
        if unknown:
            raise ValueError(f"not a region phonenumbers knows: {', '.join(unknown)}")
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_list(cls, value: object) -> object:
        if isinstance(value, str):  # "127.0.0.1, 10.0.0.0/8" as written in the environment
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            try:
                return tuple(ip_network(str(item), strict=False) for item in value)
            except ValueError as err:
                raise ValueError(f"not an address or network: {err}") from None
        return value

    @field_validator("service_numbers")
    @classmethod
    def _service_numbers_digits(cls, numbers: dict[str, ServiceNumber]) -> dict[str, ServiceNumber]:
        for number in numbers:
            if not number or not all(ch.isdigit() or ch in "+*#" for ch in number):
                raise ValueError(f"service number {number!r}: digits only")
        return numbers

    @field_validator("dial_routes")
    @classmethod
    def _routes_have_number(cls, routes: dict[str, str]) -> dict[str, str]:
        if "*" not in routes:
            raise ValueError("dial_routes needs a '*' fallback route")
        for prefix, template in routes.items():
            if "{number}" not in template and not template.startswith("PJSIP/"):
                raise ValueError(f"route {prefix!r}: template must contain {{number}}")
        return routes


def settings_from_env(env: Mapping[str, str], **overrides: Any) -> Settings:
    """Settings from an ``IVR_*`` mapping (e.g. the sandbox's) plus explicit overrides."""
    values: dict[str, Any] = {key.removeprefix("IVR_").lower(): value for key, value in env.items()}
    for key in ("dial_routes", "service_numbers"):
        if isinstance(values.get(key), str):
            values[key] = json.loads(values[key])
    values.update(overrides)
    return load_settings(**values)


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Build settings from the environment, an optional dotenv file, and explicit overrides."""
    try:
        if config_file is not None:
            if not config_file.is_file():
                raise ConfigError(f"config file {config_file} does not exist")
            return Settings(_env_file=config_file, **overrides)  # type: ignore[arg-type]
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as err:
        lines = []
        for e in err.errors():
            name = "IVR_" + "_".join(str(p) for p in e["loc"]).upper()
            lines.append(f"  {name}: {e['msg']}")
        raise ConfigError("invalid settings:\n" + "\n".join(lines)) from err
