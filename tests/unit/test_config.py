import pytest

from upwell.config import Settings, parse_rate, parse_size
from upwell.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5242880", 5242880),
        ("5MiB", 5 * 1024**2),
        ("5M", 5 * 1024**2),
        ("5m", 5 * 1024**2),
        ("5MB", 5 * 1000**2),
        ("1.5GiB", int(1.5 * 1024**3)),
        ("64 KiB", 64 * 1024),
        ("0", 0),
    ],
)
def test_parse_size_accepts_the_contract_forms(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "5 parsecs", "-5", "1.5", "5MiBs"])
def test_parse_size_rejects_nonsense_with_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_size(text)


def test_parse_rate_accepts_per_second_suffix() -> None:
    assert parse_rate("10MiB/s") == 10 * 1024**2
    assert parse_rate("2M") == 2 * 1024**2
    with pytest.raises(ConfigError):
        parse_rate("0")


def test_settings_read_seed_environment_names() -> None:
    env = {
        "UPLOAD_CHUNK_SIZE": "8MiB",
        "UPLOAD_MAX_PARALLEL": "7",
        "UPLOAD_MAX_RETRIES": "5",
        "UPLOAD_BANDWIDTH_LIMIT": "20971520",
        "UPLOAD_SESSION_DIR": "/tmp/sessions",
        "UPWELL_TARGET": "http://example.test/files/",
    }
    s = Settings.from_env(env)
    assert s.chunk_size == 8 * 1024**2
    assert s.limits.max_parallel == 7
    assert s.limits.max_retries == 5
    assert s.bandwidth_limit == 20971520
    assert str(s.session_dir) == "/tmp/sessions"
    assert s.target == "http://example.test/files/"


def test_arguments_win_over_environment() -> None:
    s = Settings.from_env({"UPLOAD_MAX_PARALLEL": "7"}, max_parallel=2, target="http://x/files/")
    assert s.limits.max_parallel == 2
    assert s.target == "http://x/files/"


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="UPLOAD_CHUNK_SIZE"):
        Settings.from_env({"UPLOAD_CHUNK_SIZE": "lots"})
