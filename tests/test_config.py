"""Settings: a missing or malformed value stops start-up with one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import SettingsError, load_settings
from tests.conftest import random_key

GOOD = {
    "WHATSAPP_APP_SECRET": "s",
    "WHATSAPP_VERIFY_TOKEN": "v",
    "BOT_MASTER_KEYS": f"k1:{random_key()}",
    "BOT_INDEX_KEY": random_key(),
    "BOT_AUDIT_KEY": random_key(),
}


def test_good_settings_and_defaults() -> None:
    s = load_settings(env_file=None, **GOOD)
    assert s.DATABASE_URL == "sqlite+aiosqlite:///var/bot.db"
    assert (s.BOT_HOST, s.BOT_PORT) == ("127.0.0.1", 8000)
    assert s.simulator  # no access token: the local simulator runs
    assert s.api_url == "http://127.0.0.1:8000/simulator/graph/v21.0"
    live = load_settings(
        env_file=None, **GOOD, WHATSAPP_ACCESS_TOKEN="t", WHATSAPP_PHONE_NUMBER_ID="1"
    )
    assert not live.simulator
    assert live.api_url == "https://graph.facebook.com/v21.0"


@pytest.mark.parametrize(
    ("change", "variable"),
    [
        ({"WHATSAPP_APP_SECRET": None}, "WHATSAPP_APP_SECRET"),
        ({"WHATSAPP_VERIFY_TOKEN": ""}, "WHATSAPP_VERIFY_TOKEN"),
        ({"BOT_MASTER_KEYS": "nokid"}, "BOT_MASTER_KEYS"),
        ({"BOT_MASTER_KEYS": "k1:c2hvcnQ="}, "BOT_MASTER_KEYS"),
        ({"BOT_MASTER_KEYS": "k1:%%%"}, "BOT_MASTER_KEYS"),
        ({"BOT_INDEX_KEY": "abc"}, "BOT_INDEX_KEY"),
        ({"BOT_INDEX_KEY": None}, "BOT_INDEX_KEY"),
        ({"BOT_AUDIT_KEY": "abc"}, "BOT_AUDIT_KEY"),
        ({"BOT_AUDIT_KEY": None}, "BOT_AUDIT_KEY"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"BOT_PORT": "eighty"}, "BOT_PORT"),
        ({"BOT_PORT": "70000"}, "BOT_PORT"),
        ({"WHATSAPP_API_URL": "ftp://x"}, "WHATSAPP_API_URL"),
        ({"WHATSAPP_ACCESS_TOKEN": "t"}, "WHATSAPP_PHONE_NUMBER_ID"),
        ({"BOT_WORKERS": "2"}, "BOT_WORKERS"),
        (
            {
                "BOT_TURN_WORKERS": "2",
                "WHATSAPP_ACCESS_TOKEN": "t",
                "WHATSAPP_PHONE_NUMBER_ID": "1",
            },
            "BOT_TURN_WORKERS",
        ),
        ({"BOT_TURN_WORKERS": "1"}, "BOT_TURN_WORKERS"),  # the simulator needs one process
        ({"BOT_LOG_LEVEL": "LOUD"}, "BOT_LOG_LEVEL"),
        # Blank secrets would pass start-up and then refuse every delivery or call.
        ({"WHATSAPP_APP_SECRET": ","}, "WHATSAPP_APP_SECRET"),
        ({"WHATSAPP_APP_SECRET": " "}, "WHATSAPP_APP_SECRET"),
        ({"WHATSAPP_APP_SECRET": "s, ,t"}, "WHATSAPP_APP_SECRET"),
        ({"WHATSAPP_VERIFY_TOKEN": " \t"}, "WHATSAPP_VERIFY_TOKEN"),
        (
            {"WHATSAPP_ACCESS_TOKEN": "  ", "WHATSAPP_PHONE_NUMBER_ID": "1"},
            "WHATSAPP_ACCESS_TOKEN",
        ),
        ({"WHATSAPP_ACCESS_TOKEN_FALLBACK": " "}, "WHATSAPP_ACCESS_TOKEN_FALLBACK"),
    ],
)
def test_bad_value_names_the_variable(change: dict[str, str | None], variable: str) -> None:
    values = {**GOOD, **change}
    values = {k: v for k, v in values.items() if v is not None}
    with pytest.raises(SettingsError) as err:
        load_settings(env_file=None, **values)
    message = str(err.value)
    assert message.startswith(variable + ":"), message
    assert "\n" not in message


def test_each_bad_variable_has_its_own_line() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(env_file=None, **{**GOOD, "WHATSAPP_APP_SECRET": ",", "BOT_INDEX_KEY": "x"})
    lines = str(err.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["WHATSAPP_APP_SECRET", "BOT_INDEX_KEY"]


def test_one_turn_worker_needs_no_redis() -> None:
    """Web workers only store deliveries; with a single turn worker nothing is shared."""
    live = {**GOOD, "WHATSAPP_ACCESS_TOKEN": "t", "WHATSAPP_PHONE_NUMBER_ID": "1"}
    s = load_settings(env_file=None, **live, BOT_WORKERS="3", BOT_TURN_WORKERS="1")
    assert s.turn_processes == 1
    with pytest.raises(SettingsError, match=r"^BOT_WORKERS: .*REDIS_URL"):
        load_settings(env_file=None, **live, BOT_WORKERS="3")  # each would run turns


def test_master_key_ids_must_be_unique() -> None:
    key = random_key()
    with pytest.raises(SettingsError, match="BOT_MASTER_KEYS"):
        load_settings(env_file=None, **{**GOOD, "BOT_MASTER_KEYS": f"a:{key},a:{key}"})


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("\n".join(f"{k}={v}" for k, v in GOOD.items()) + "\nBOT_PORT=8123\n")
    assert load_settings(env_file=env).BOT_PORT == 8123


def _clean_env() -> dict[str, str]:
    prefixes = ("WHATSAPP_", "BOT_", "DATABASE_URL", "REDIS_URL")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def test_serve_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    env = _clean_env() | {"WHATSAPP_VERIFY_TOKEN": "v"}
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [  # one line for each variable missing
        f"error: {name}: is required but not set"
        for name in ("WHATSAPP_APP_SECRET", "BOT_MASTER_KEYS", "BOT_INDEX_KEY", "BOT_AUDIT_KEY")
    ]


def test_dev_mode_generates_secrets_once_and_says_so(tmp_path: Path) -> None:
    from bot.cli import DEV_ENV, _settings

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        first = _settings(dev=True)
        second = _settings(dev=True)
    finally:
        os.chdir(cwd)
    assert (tmp_path / DEV_ENV).stat().st_mode & 0o777 == 0o600
    assert first.BOT_INDEX_KEY == second.BOT_INDEX_KEY
    assert first.BOT_AUDIT_KEY == second.BOT_AUDIT_KEY
    assert first.simulator


def test_a_dev_file_from_before_the_audit_key_gets_one(tmp_path: Path) -> None:
    from bot.config import dev_env_file

    path = tmp_path / "dev.env"
    dev_env_file(path)
    old = "".join(line for line in path.open() if not line.startswith("BOT_AUDIT_KEY="))
    path.write_text(old)
    dev_env_file(path)
    text = path.read_text()
    assert text.startswith(old) and text.count("BOT_AUDIT_KEY=") == 1
    settings = load_settings(env_file=path)
    assert len(settings.audit_key) == 32


def test_every_setting_is_listed_in_env_example() -> None:
    from pathlib import Path

    from bot.config import Settings

    listed = {
        line.split("=", 1)[0]
        for line in (Path(__file__).resolve().parents[1] / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert set(Settings.model_fields) - listed == set()


def test_serve_names_a_broken_template_file_in_one_line(tmp_path: Path) -> None:
    import shutil

    from bot.config import PROJECT

    flows = tmp_path / "flows"
    shutil.copytree(PROJECT / "flows", flows)
    with (flows / "templates.yaml").open("a") as f:
        f.write("  oops: [\n")
    env = _clean_env() | {"BOT_FLOWS_DIR": str(flows)}
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "serve", "--dev"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {flows / 'templates.yaml'}:") and "not valid YAML" in last
