"""Settings read from the environment (``KONBIT_*``), with an embedded default."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything an operator may set; SQLite under the data directory by default."""

    model_config = SettingsConfigDict(env_prefix="KONBIT_", extra="ignore")

    data_dir: Path = Field(default=Path("/var/lib/konbit"))
    database_url: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    audit_retention_days: int = Field(default=365, ge=1)
    default_quotas: dict[str, int] = Field(
        default_factory=lambda: {
            "sites": 10,
            "mailboxes": 50,
            "lists": 5,
            "databases": 10,
            "disk_mb": 10_240,
            "mail_mb": 20_480,
        }
    )
    ssh_key: Path | None = Field(
        default=None, description="The panel's SSH private key; default <data_dir>/ssh/id_ed25519"
    )
    reconcile_lease_seconds: int = Field(default=900, ge=2)
    retry_base_seconds: float = Field(default=15.0, gt=0, description="First retry delay")
    page_size_max: int = 500
    # HTTPS (panel.sites.acme): the ACME directory, the account's contact, a CA file that
    # verifies the ACME server (a test CA; default: the system's trust store).
    acme_directory: str = "https://acme-v02.api.letsencrypt.org/directory"
    acme_email: str | None = None
    acme_ca_bundle: Path | None = None
    acme_retry_base_seconds: float = Field(default=300.0, gt=0, description="First retry delay")
    acme_timeout_seconds: float = Field(default=90.0, gt=0, description="One order, at most")
    acme_dns_propagation_seconds: float = Field(
        default=2.0,
        ge=0,
        description="After a DNS-01 answer is on every DNS server, this long before the CA "
        "is asked to look (the secondaries transfer it at the primary's NOTIFY)",
    )
    secret_key: str | None = Field(
        default=None,
        description="Fernet key that encrypts secrets at rest (uploaded TLS keys, the ACME "
        "account key); default: <data_dir>/secret.key, made on first use. Give every panel "
        "and worker process the same one.",
    )
    usage_interval_minutes: int = Field(
        default=60, ge=1, description="How often every host's usage is collected"
    )
    quota_suspend_after_hours: float | None = Field(
        default=None,
        ge=0,
        description="Suspend an account's sites this long after it went over its disk quota "
        "(unset: flag it to the member and staff, never suspend)",
    )
    idempotency_ttl_hours: int = 24
    # Backups (panel.tasks): where on a backup host, and how many and how long to keep.
    backup_dir: str = Field(
        default="/var/lib/konbit/backups",
        pattern=r"^/[A-Za-z0-9._/-]+$",
        description="The backup store's directory on every backup host",
    )
    backup_keep_count: int = Field(default=7, ge=1, description="Backups kept per site")
    backup_keep_days: int = Field(default=30, ge=1, description="Backups older are dropped")

    deb_cache: Path | None = Field(
        default=None,
        description="Where Debian packages fetched for platforms are kept (default "
        "<data_dir>/platforms/debs): a rebuild downloads nothing",
    )

    @cached_property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'konbit.sqlite3'}"

    @property
    def ssh_key_path(self) -> Path:
        return self.ssh_key or self.data_dir / "ssh" / "id_ed25519"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


def load_settings() -> Settings:
    return Settings()
