"""One settings file with a section per part of the app, validated on load, migrated from the
three files of version 1; the low-score threshold stored once."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from app import paths
from app.cli import main
from app.cloud import providers
from app.cloud.providers import TeacherConfig, TeacherConfigError
from app.evolve.settings import EvolutionSettings
from app.settings import Settings
from app.settings_file import VERSION, SettingsFileError, read_sections, settings_path
from app.ui import settings as ui_settings
from app.ui.settings import SettingsError, UiSettings


@pytest.fixture
def home(data_home: Path) -> Path:
    home = paths.data_dir()
    assert home == data_home
    return home


def saved() -> dict[str, object]:
    raw: dict[str, object] = json.loads(settings_path().read_text(encoding="utf-8"))
    return raw


def test_each_part_saves_its_section_of_the_one_file(home: Path) -> None:
    ui_settings.save_settings(UiSettings(alpha=0.6))
    EvolutionSettings(method="prefix", replay=7).save()
    providers.save_config(TeacherConfig(provider="gemini", model="gemini-x"))
    assert sorted(p.name for p in home.iterdir()) == ["settings.json"]
    raw = saved()
    assert raw["version"] == VERSION
    assert set(raw) == {"version", "desktop", "evolution", "teacher"}
    assert ui_settings.load_settings().alpha == 0.6
    assert (EvolutionSettings.load().method, EvolutionSettings.load().replay) == ("prefix", 7)
    assert providers.load_config() == TeacherConfig(provider="gemini", model="gemini-x")


def test_the_low_score_threshold_is_stored_once(home: Path) -> None:
    ui_settings.save_settings(UiSettings(low_score_threshold=0.35))
    raw = saved()
    assert "low_score_threshold" not in raw["desktop"]  # type: ignore[operator]
    assert EvolutionSettings.load().low_score == 0.35
    settings = EvolutionSettings.load()
    settings.low_score = 0.42
    settings.save()
    assert ui_settings.load_settings().low_score_threshold == 0.42


def test_version_1s_three_files_are_migrated_into_sections(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    old_desktop = asdict(UiSettings(alpha=0.5, low_score_threshold=0.3))
    del old_desktop["shots"]  # saved before that field existed
    (home / "settings.json").write_text(json.dumps(old_desktop), encoding="utf-8")
    (home / "evolution.json").write_text(
        json.dumps({"low_score": 0.5, "method": "prefix"}), encoding="utf-8"
    )
    (home / "teacher.json").write_text(json.dumps({"provider": "gemini"}), encoding="utf-8")

    loaded = Settings.load()
    assert (loaded.desktop.alpha, loaded.desktop.shots) == (0.5, UiSettings().shots)
    # The manager's threshold (the desktop's) wins: it was the one synced to evolution.json.
    assert loaded.desktop.low_score_threshold == loaded.evolution.low_score == 0.3
    assert loaded.evolution.method == "prefix"
    assert loaded.teacher == TeacherConfig(provider="gemini")
    assert saved()["version"] == VERSION
    assert sorted(p.name for p in home.iterdir()) == [
        "evolution.json.v1",
        "settings.json",
        "teacher.json.v1",
    ]
    assert Settings.load() == loaded  # read again from the new file


def test_a_first_start_writes_nothing(home: Path) -> None:
    assert Settings.load() == Settings(UiSettings(), EvolutionSettings(), TeacherConfig())
    assert not settings_path().exists()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "unreadable"),
        ("[]", "not a JSON object"),
        (json.dumps({"version": VERSION + 1}), "newer Xiaoer"),
        (json.dumps({"version": VERSION, "colours": {}}), "unknown sections"),
        (json.dumps({"version": VERSION, "teacher": []}), "teacher is not a JSON object"),
    ],
)
def test_a_file_that_is_not_settings_is_refused_by_every_part(
    home: Path, content: str, words: str
) -> None:
    home.mkdir(parents=True, exist_ok=True)
    settings_path().write_text(content, encoding="utf-8")
    with pytest.raises(SettingsFileError, match=words):
        read_sections()
    with pytest.raises(SettingsError, match=words):
        ui_settings.load_settings()
    with pytest.raises(TeacherConfigError, match=words):
        providers.load_config()
    with pytest.raises(ValueError, match="unreadable evolution settings"):
        EvolutionSettings.load()


def test_each_section_is_validated_on_load(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    settings_path().write_text(
        json.dumps({"version": VERSION, "evolution": {"method": "dreaming"}}), encoding="utf-8"
    )
    assert main(["settings"]) == 1
    assert "Unknown method 'dreaming'" in capsys.readouterr().err
    settings_path().write_text(
        json.dumps({"version": VERSION, "desktop": {"alpha": 3}}), encoding="utf-8"
    )
    with pytest.raises(SettingsError, match="alpha"):
        Settings.load()


def test_xiaoer_settings_prints_every_section(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Settings(
        replace(UiSettings(), low_score_threshold=0.4),
        replace(EvolutionSettings(), low_score=0.4),
        TeacherConfig(provider="gemini"),
    ).save()
    assert main(["settings"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == VERSION and shown["path"] == str(settings_path())
    assert shown["evolution"]["low_score"] == 0.4 and "low_score_threshold" not in shown["desktop"]
    assert shown["teacher"]["provider"] == "gemini"


def test_two_thresholds_are_not_saved(home: Path) -> None:
    two = Settings(
        UiSettings(low_score_threshold=0.3), EvolutionSettings(low_score=0.5), TeacherConfig()
    )
    with pytest.raises(ValueError, match="two low-score thresholds"):
        two.save()


def test_a_long_run_saves_only_the_fields_it_changed(home: Path) -> None:
    at_start = EvolutionSettings.load()  # what a run loaded when it started
    ui_settings.save_settings(UiSettings(low_score_threshold=0.3))  # the manager, meanwhile
    EvolutionSettings.save_fields(corpus="/shop/history.jsonl", holdout="/shop/holdout.jsonl")
    saved_now = EvolutionSettings.load()
    assert (saved_now.corpus, saved_now.holdout) == ("/shop/history.jsonl", "/shop/holdout.jsonl")
    assert saved_now.low_score == 0.3 != at_start.low_score
    with pytest.raises(ValueError, match="low_score"):
        EvolutionSettings.save_fields(low_score=2.0)
    assert EvolutionSettings.load() == saved_now
