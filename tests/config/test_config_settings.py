"""Settings: defaults < TOML file < LLAMARUN_* environment < flags, with provenance and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamarun.config import DEFAULT_MODEL, Origin, config_path, home_dir, load_settings, parse_duration, parse_size
from llamarun.errors import ConfigError, InvalidParameterError


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file_or_environment(tmp_path: Path) -> None:
    env = {"LLAMARUN_CONFIG": str(write(tmp_path, ""))}
    s = load_settings(env=env)
    assert (s.host, s.port, s.default_model, s.log_level) == ("127.0.0.1", 11434, DEFAULT_MODEL, "WARNING")
    assert (s.threads, s.n_ctx, s.parallel, s.n_gpu_layers, s.memory_budget) == (0, 0, 0, -1, 0)
    assert s.keep_alive == 300.0 and s.cors_origins == () and s.api_key is None
    assert all(origin == Origin("default") for origin in s.origins.values())


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = write(tmp_path, 'port = 8001\nhost = "0.0.0.0"\nthreads = 3\nkeep_alive = "10m"\n')
    env = {"LLAMARUN_CONFIG": str(path), "LLAMARUN_PORT": "8002", "LLAMARUN_THREADS": "5", "UNRELATED": "x"}
    s = load_settings({"port": 8003, "n_ctx": None}, env=env)

    assert s.port == 8003 and s.origin("port") == Origin("flag", "--port")  # flag beats env and file
    assert s.threads == 5 and s.origin("threads") == Origin("env", "LLAMARUN_THREADS")  # env beats file
    assert s.host == "0.0.0.0" and s.origin("host") == Origin("file", str(path))
    assert s.keep_alive == 600.0 and str(s.origin("keep_alive")) == f"file {path}"
    assert s.n_ctx == 0 and s.origin("n_ctx") == Origin("default")  # None flag = not given
    assert s.config_file == path


def test_each_layer_alone_overrides_the_default(tmp_path: Path) -> None:
    empty = {"LLAMARUN_CONFIG": str(write(tmp_path, ""))}
    assert load_settings(env=empty).parallel == 0
    assert load_settings(env={"LLAMARUN_CONFIG": str(write(tmp_path, "parallel = 2", "p.toml"))}).parallel == 2
    assert load_settings(env={**empty, "LLAMARUN_PARALLEL": "3"}).parallel == 3
    assert load_settings({"parallel": 4}, env=empty).parallel == 4


def test_config_file_argument_beats_environment_variable(tmp_path: Path) -> None:
    a, b = write(tmp_path, "port = 1", "a.toml"), write(tmp_path, "port = 2", "b.toml")
    assert load_settings(env={"LLAMARUN_CONFIG": str(a)}, config_file=b).port == 2


def test_environment_names_are_case_insensitive_and_empty_means_unset(tmp_path: Path) -> None:
    env = {"LLAMARUN_CONFIG": str(write(tmp_path, "")), "llamarun_port": "9001", "LLAMARUN_HOST": ""}
    s = load_settings(env=env)
    assert s.port == 9001 and s.host == "127.0.0.1"


def test_invalid_file_value_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "port = 99999\n")
    with pytest.raises(ConfigError) as info:
        load_settings(env={"LLAMARUN_CONFIG": str(path)})
    message = str(info.value)
    assert "'port'" in message and str(path) in message and "99999" in message
    assert info.value.key == "port" and info.value.source == f"file {path}"
    assert isinstance(info.value, InvalidParameterError)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('log_level = "loud"', "log_level"),
        ('keep_alive = "5 parsecs"', "keep_alive"),
        ('memory_budget = "lots"', "memory_budget"),
        ("threads = -2", "threads"),
        ('parallel = "four"', "parallel"),
        ("insecure = 3", "insecure"),
    ],
)
def test_each_invalid_file_value_is_reported_with_its_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text + "\n")
    with pytest.raises(ConfigError, match=rf"'{key}'.*{path}") as info:
        load_settings(env={"LLAMARUN_CONFIG": str(path)})
    assert info.value.key == key


def test_unknown_key_in_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, "prot = 8080\n")
    with pytest.raises(ConfigError, match=rf"unknown setting 'prot' in config file {path}"):
        load_settings(env={"LLAMARUN_CONFIG": str(path)})


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "port = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_settings(env={"LLAMARUN_CONFIG": str(path)})
    assert str(path) in str(info.value)


def test_explicit_config_file_must_exist_but_default_may_be_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(env={"LLAMARUN_CONFIG": str(tmp_path / "missing.toml")})
    default, explicit = config_path({})
    assert default.name == "config.toml" and default.parent.name == "llamarun" and not explicit


def test_invalid_environment_value_names_the_variable(tmp_path: Path) -> None:
    env = {"LLAMARUN_CONFIG": str(write(tmp_path, "")), "LLAMARUN_PORT": "http"}
    with pytest.raises(ConfigError, match="'port'.*environment variable LLAMARUN_PORT") as info:
        load_settings(env=env)
    assert info.value.source == "environment variable LLAMARUN_PORT"


def test_invalid_flag_value_names_the_flag(tmp_path: Path) -> None:
    env = {"LLAMARUN_CONFIG": str(write(tmp_path, ""))}
    with pytest.raises(ConfigError, match="'max_queue'.*flag --max-queue"):
        load_settings({"max_queue": -1}, env=env)


def test_api_key_is_never_shown(tmp_path: Path) -> None:
    env = {"LLAMARUN_CONFIG": str(write(tmp_path, "")), "LLAMARUN_API_KEY": "s3cret"}
    s = load_settings(env=env)
    assert s.resolved_api_key() == "s3cret"
    assert "s3cret" not in repr(s) and "s3cret" not in str(s.display_values())
    with pytest.raises(ConfigError) as info:
        load_settings({"api_key": ["not", "a", "string"]}, env=env)
    assert "['not'" not in str(info.value) and "'api_key' = ********" in str(info.value)


def test_api_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("from-file\nignored\n")
    env = {"LLAMARUN_CONFIG": str(write(tmp_path, f'api_key_file = "{key_file}"'))}
    assert load_settings(env=env).resolved_api_key() == "from-file"
    key_file.write_text("")
    with pytest.raises(ConfigError, match="empty"):
        load_settings(env=env).resolved_api_key()


def test_auto_words_sizes_durations_and_lists(tmp_path: Path) -> None:
    path = write(tmp_path, 'threads = "auto"\nn_gpu_layers = "auto"\ncors_origins = ["http://a"]\n')
    env = {"LLAMARUN_CONFIG": str(path), "LLAMARUN_MEMORY_BUDGET": "8GiB", "LLAMARUN_REQUEST_TIMEOUT": "1h30m"}
    s = load_settings(env=env)
    assert (s.threads, s.n_gpu_layers, s.memory_budget, s.request_timeout) == (0, -1, 8 << 30, 5400.0)
    assert s.cors_origins == ("http://a",)
    env["LLAMARUN_CORS_ORIGINS"] = "http://x, http://y"
    assert load_settings(env=env).cors_origins == ("http://x", "http://y")


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = load_settings(env={"LLAMARUN_CONFIG": str(write(tmp_path, ""))})
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        s.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("5m", 300.0), ("1h30m", 5400.0), ("90s", 90.0), ("250ms", 0.25), ("-1", -1.0), (0, 0.0), ("-1m", -60.0),
     (42, 42.0), ("1.5h", 5400.0)],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "5x", "m5", "1h 30m", True, None, float("inf"), "nan"])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "size"),
    [("8GiB", 8 << 30), ("512MB", 512_000_000), ("1.5G", int(1.5 * 10**9)), ("1024", 1024), (2048, 2048),
     ("2 gib", 2 << 30), ("10k", 10_000)],
)
def test_parse_size(value: object, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["lots", "-1", -5, "8XB", True])
def test_parse_size_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_size(value)


def test_home_dir_follows_environment_then_file_then_default(tmp_path: Path) -> None:
    path = write(tmp_path, f'home = "{tmp_path / "from-file"}"\n')
    env = {"LLAMARUN_CONFIG": str(path)}
    assert home_dir(env) == tmp_path / "from-file" == load_settings(env=env).home
    env["LLAMARUN_HOME"] = str(tmp_path / "from-env")
    assert home_dir(env) == tmp_path / "from-env" == load_settings(env=env).home
    empty = {"LLAMARUN_CONFIG": str(write(tmp_path, "", "empty.toml"))}
    assert home_dir(empty) == load_settings(env=empty).home
    assert home_dir(empty).name == "llamarun"


def test_home_dir_ignores_unrelated_bad_settings(tmp_path: Path) -> None:
    env = {"LLAMARUN_CONFIG": str(write(tmp_path, 'home = "~/models"\nport = "nope"\n'))}
    assert home_dir(env) == Path("~/models").expanduser()
    with pytest.raises(ConfigError):
        load_settings(env=env)


def test_log_prompts_is_off_by_default_and_set_by_each_layer(tmp_path: Path) -> None:
    from llamarun.runtime import ManagerConfig

    empty = {"LLAMARUN_CONFIG": str(write(tmp_path, ""))}
    s = load_settings(env=empty)
    assert s.log_prompts is False and s.origin("log_prompts") == Origin("default")
    assert ManagerConfig.from_settings(s).log_prompts is False
    on_file = load_settings(env={"LLAMARUN_CONFIG": str(write(tmp_path, "log_prompts = true", "l.toml"))})
    assert on_file.log_prompts is True
    on_env = load_settings(env={**empty, "LLAMARUN_LOG_PROMPTS": "1"})
    assert on_env.log_prompts is True and on_env.origin("log_prompts") == Origin("env", "LLAMARUN_LOG_PROMPTS")
    on_flag = load_settings({"log_prompts": True}, env=empty)
    assert on_flag.origin("log_prompts") == Origin("flag", "--log-prompts")
    assert ManagerConfig.from_settings(on_flag).log_prompts is True
    off_flag = load_settings({"log_prompts": False}, env={**empty, "LLAMARUN_LOG_PROMPTS": "true"})
    assert off_flag.log_prompts is False  # --no-log-prompts beats the environment
    with pytest.raises(ConfigError, match="log_prompts"):
        load_settings(env={"LLAMARUN_CONFIG": str(write(tmp_path, 'log_prompts = "maybe"', "bad.toml"))})


def test_speculative_settings_reach_every_models_runtime_config(tmp_path: Path) -> None:
    from llamarun.errors import InvalidParameterError
    from llamarun.runtime import ManagerConfig
    from llamarun.runtime.speculative import Speculation

    empty = {"LLAMARUN_CONFIG": str(write(tmp_path, ""))}
    assert ManagerConfig.from_settings(load_settings(env=empty)).speculation() is None  # off by default
    on_file = load_settings(env={"LLAMARUN_CONFIG": str(write(tmp_path, 'speculative = "ngram"\n'
                                                                          "speculative_n_max = 4\n", "s.toml"))})
    assert ManagerConfig.from_settings(on_file).speculation() == Speculation(type="ngram", n_max=4)
    on_env = load_settings(env={**empty, "LLAMARUN_SPECULATIVE": "NGRAM", "LLAMARUN_SPECULATIVE_N_MAX": "12"})
    assert on_env.origin("speculative_n_max") == Origin("env", "LLAMARUN_SPECULATIVE_N_MAX")
    assert ManagerConfig.from_settings(on_env).speculation() == Speculation(type="ngram", n_max=12)
    on_flag = load_settings({"speculative_n_max": 2}, env=empty)
    assert on_flag.origin("speculative_n_max") == Origin("flag", "--draft-max")
    draft = tmp_path / "draft.gguf"
    draft.write_bytes(b"GGUF")
    with_model = load_settings({"speculative": "draft", "speculative_draft_model": str(draft)}, env=empty)
    assert ManagerConfig.from_settings(with_model).speculation() == Speculation(type="draft", n_max=8,
                                                                                draft_model=str(draft))
    with pytest.raises(InvalidParameterError, match="--draft-model"):
        ManagerConfig.from_settings(load_settings({"speculative": "draft"}, env=empty))
    with pytest.raises(InvalidParameterError, match="not a file"):
        ManagerConfig.from_settings(load_settings({"speculative_draft_model": str(tmp_path / "none.gguf")}, env=empty))
    with pytest.raises(ConfigError, match="speculative"):
        load_settings(env={"LLAMARUN_CONFIG": str(write(tmp_path, 'speculative = "medusa"', "bad2.toml"))})
