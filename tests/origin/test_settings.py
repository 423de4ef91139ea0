"""Settings: built from an explicit environment, validated, secrets generated in development."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from origin.settings import Settings, SettingsError


def env_in(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"SECRETS_FILE": str(tmp_path / "data" / "secrets.json"), **values}


def test_defaults_follow_the_contract(tmp_path: Path) -> None:
    settings = Settings.from_environ(env_in(tmp_path), announce=lambda line: None)
    assert settings.database_url == "sqlite:///./data/imgorigin.db"
    assert settings.storage_type == "local" and str(settings.storage_path) == "data/storage"
    assert (settings.jwt_ttl_seconds, settings.refresh_ttl_seconds) == (3600, 2592000)
    assert settings.max_upload_size == 10485760 and settings.user_quota_bytes == 5368709120
    assert (settings.rate_limit_per_minute, settings.auth_rate_limit_per_minute) == (100, 20)
    assert settings.max_source_pixels == 100_000_000 and settings.max_output_dimension == 8192
    assert settings.cache_max_bytes == 33554432 and settings.queue_max == 100
    assert settings.queue_timeout_seconds == 10 and settings.concurrency >= 1
    assert settings.env == "development" and not settings.production
    assert settings.metrics_allow == ("127.0.0.1", "::1") and settings.max_connections == 1000
    assert (settings.header_timeout_seconds, settings.body_timeout_seconds) == (10, 60)


def test_development_generates_secrets_once(tmp_path: Path) -> None:
    said: list[str] = []
    first = Settings.from_environ(env_in(tmp_path), announce=said.append)
    second = Settings.from_environ(env_in(tmp_path), announce=said.append)
    path = tmp_path / "data" / "secrets.json"
    assert len(said) == 1 and str(path) in said[0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.jwt_secret == second.jwt_secret and len(first.jwt_secret) >= 32
    assert first.url_signing_keys == second.url_signing_keys
    assert set(json.loads(path.read_text())) == {"jwt_secret", "url_signing_keys"}


def test_given_secrets_are_used_and_nothing_is_written(tmp_path: Path) -> None:
    settings = Settings.from_environ(
        env_in(tmp_path, JWT_SECRET="j" * 40, URL_SIGNING_KEYS="k1:abc:def, k2:ghi")
    )
    assert settings.jwt_secret == "j" * 40
    assert [(k.key_id, k.secret) for k in settings.url_signing_keys] == [
        ("k1", b"abc:def"),
        ("k2", b"ghi"),
    ]
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("missing", ["JWT_SECRET", "URL_SIGNING_KEYS"])
def test_production_refuses_generated_secrets(tmp_path: Path, missing: str) -> None:
    values = {
        "IMGORIGIN_ENV": "production",
        "JWT_SECRET": "j" * 40,
        "URL_SIGNING_KEYS": "k:" + "s" * 32,
    }
    del values[missing]
    with pytest.raises(SettingsError) as error:
        Settings.from_environ(env_in(tmp_path, **values))
    assert error.value.variable == missing
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAX_UPLOAD_SIZE", "abc"),
        ("MAX_UPLOAD_SIZE", "0"),
        ("USER_QUOTA_BYTES", "-1"),
        ("JWT_TTL_SECONDS", "1.5"),
        ("CONCURRENCY", "0"),
        ("QUEUE_TIMEOUT_SECONDS", "soon"),
        ("QUEUE_MAX", "-3"),
        ("MAX_OUTPUT_DIMENSION", "100000"),
        ("STORAGE_TYPE", "ftp"),
        ("IMGORIGIN_ENV", "staging"),
        ("DATABASE_URL", "mysql://x"),
        ("DATABASE_URL", "sqlite:///"),
        ("URL_SIGNING_KEYS", "nocolon"),
        ("URL_SIGNING_KEYS", "a:1,a:2"),
        ("S3_ENDPOINT_URL", "not a url"),
        ("REDIS_URL", "http://x"),
        ("CORS_ORIGINS", "example.com"),
        ("PRESETS_FILE", "/nonexistent/presets.json"),
        ("METRICS_ALLOW", "127.0.0.1,10.0.0.0/33"),
        ("METRICS_ALLOW", "localhost"),
        ("HEADER_TIMEOUT_SECONDS", "0"),
        ("BODY_TIMEOUT_SECONDS", "later"),
        ("MAX_CONNECTIONS", "0"),
        ("MAX_UPLOAD_SIZE", "1_000"),  # int() takes underscores; the contract says digits
        ("FORWARDED_ALLOW_IPS", "nginx.internal"),  # were taken, and could never match
        ("URL_UPLOAD_HOSTS", "https://example.com/"),
        ("URL_UPLOAD_HOSTS", "img.example.com:8080"),
        ("AUTO_WIDTHS", "320,\u00b2"),  # str.isdigit takes a superscript two; int() refuses it
        ("URL_UPLOAD_PORTS", "443,\u0663"),  # an Arabic-Indic three
        ("WEBHOOK_PORTS", "\u00b2"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_environ(env_in(tmp_path, **{variable: value}), announce=lambda line: None)
    assert error.value.variable == variable
    assert str(error.value).startswith(f"{variable}: ") and "\n" not in str(error.value)
    assert not (tmp_path / "data").exists()


def test_s3_needs_a_bucket(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_environ(env_in(tmp_path, STORAGE_TYPE="s3"), announce=lambda line: None)
    assert error.value.variable == "STORAGE_BUCKET"


def test_presets_file(tmp_path: Path) -> None:
    presets = tmp_path / "presets.json"
    presets.write_text(json.dumps({"thumb": "w_150,h_150,c_fill"}))
    settings = Settings.from_environ(
        env_in(tmp_path, PRESETS_FILE=str(presets)), announce=lambda line: None
    )
    assert dict(settings.presets) == {"thumb": "w_150,h_150,c_fill"}
    presets.write_text("[1, 2]")
    with pytest.raises(SettingsError, match="PRESETS_FILE"):
        Settings.from_environ(
            env_in(tmp_path, PRESETS_FILE=str(presets)), announce=lambda line: None
        )


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = Settings.from_environ(env_in(tmp_path), announce=lambda line: None)
    with pytest.raises(AttributeError):
        settings.max_upload_size = 1  # type: ignore[misc]


PRODUCTION = {"IMGORIGIN_ENV": "production", "JWT_SECRET": "j" * 32}


@pytest.mark.parametrize(
    ("values", "variable", "named"),
    [
        (
            {"JWT_SECRET": "short-jwt-secret-0123456789abcd", "URL_SIGNING_KEYS": "k:" + "s" * 32},
            "JWT_SECRET",
            "got 31",
        ),
        ({"URL_SIGNING_KEYS": "k1:short-signing-secret"}, "URL_SIGNING_KEYS", "'k1'"),
        ({"URL_SIGNING_KEYS": f"new:{'n' * 40},old:old-short-secret"}, "URL_SIGNING_KEYS", "'old'"),
        ({"URL_SIGNING_KEYS": "k:" + "é" * 15}, "URL_SIGNING_KEYS", "got 30"),  # bytes count
    ],
)
def test_production_refuses_short_secrets(
    tmp_path: Path, values: dict[str, str], variable: str, named: str
) -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_environ(env_in(tmp_path, **{**PRODUCTION, **values}))
    text = str(error.value)
    assert error.value.variable == variable and named in text and "at least 32 bytes" in text
    assert "\n" not in text and "upgrade notes" in text
    secrets = [values.get("JWT_SECRET", "")] + [
        item.partition(":")[2] for item in values.get("URL_SIGNING_KEYS", "").split(",")
    ]
    assert not any(secret and secret in text for secret in secrets)  # never the secret itself


def test_production_accepts_secrets_of_32_bytes(tmp_path: Path) -> None:
    settings = Settings.from_environ(
        env_in(tmp_path, **PRODUCTION, URL_SIGNING_KEYS=f"a:{'é' * 16},b:{'x' * 32}")
    )
    assert [len(k.secret) for k in settings.url_signing_keys] == [32, 32]
    # Development takes any length (the tests' short keys; generated ones are long).
    assert Settings.from_environ(env_in(tmp_path, JWT_SECRET="j", URL_SIGNING_KEYS="k:s"))


def test_reading_without_generating_never_creates_the_secrets_file(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secrets.json"
    with pytest.raises(SettingsError) as error:
        Settings.from_environ(env_in(tmp_path), generate=False)
    assert error.value.variable == "SECRETS_FILE" and str(path) in str(error.value)
    assert not (tmp_path / "data").exists()
    made = Settings.from_environ(env_in(tmp_path), announce=lambda line: None)
    read = Settings.from_environ(env_in(tmp_path), generate=False)
    assert read.url_signing_keys == made.url_signing_keys and read.jwt_secret == made.jwt_secret
    given = Settings.from_environ(
        {"SECRETS_FILE": str(tmp_path / "none.json"), "JWT_SECRET": "j", "URL_SIGNING_KEYS": "k:s"},
        generate=False,
    )
    assert given.url_signing_keys[0].secret == b"s"


@pytest.mark.parametrize(
    ("present", "missing"),
    [
        ("PURGE_CLOUDFLARE_ZONE", "PURGE_CLOUDFLARE_TOKEN"),
        ("PURGE_FASTLY_TOKEN", "PURGE_FASTLY_SERVICE"),
        ("PURGE_WEBHOOK_URL", "PURGE_WEBHOOK_SECRET"),
    ],
)
def test_a_purge_pair_half_set_names_both(tmp_path: Path, present: str, missing: str) -> None:
    """It said 'PURGE_CLOUDFLARE_TOKEN: set it with PURGE_CLOUDFLARE_TOKEN'."""
    value = "http://127.0.0.1:9/x" if present.endswith("_URL") else "x"
    with pytest.raises(SettingsError) as error:
        Settings.from_environ(env_in(tmp_path, **{present: value}), announce=lambda line: None)
    assert error.value.variable == missing
    assert str(error.value) == f"{missing}: needed with {present}"


@pytest.mark.parametrize("secret", ["whsec_abc", "whsec_", "whsec_!!!!", "abc"])
def test_a_purge_webhook_secret_must_be_one_it_can_sign_with(tmp_path: Path, secret: str) -> None:
    """``whsec_abc`` (not base64) was taken, and every purge's signing then failed;
    ``whsec_`` signed with an empty key."""
    values = {"PURGE_WEBHOOK_URL": "http://127.0.0.1:9/x", "PURGE_WEBHOOK_SECRET": secret}
    with pytest.raises(SettingsError) as error:
        Settings.from_environ(env_in(tmp_path, **values), announce=lambda line: None)
    assert error.value.variable == "PURGE_WEBHOOK_SECRET"
