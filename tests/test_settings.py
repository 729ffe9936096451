"""The settings object and the README table made from it; the Dagster home's dagster.yaml follows the
project's, unless an operator edited it."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import zipfile

import dagster as dg
import pytest

from event_pipeline import settings
from event_pipeline.instance_config import install_instance_config
from event_pipeline.media import FetchPolicy
from event_pipeline.read.archive import Limits
from event_pipeline.resources import DatabaseResource, MediaStorageResource


def test_instance_config_is_installed_updated_and_edits_are_kept(tmp_path, caplog):
    template, config = tmp_path / "project.yaml", tmp_path / "home" / "dagster.yaml"
    config.parent.mkdir()
    template.write_text("run_coordinator: {max_concurrent_runs: 4}\n")
    install_instance_config(template, config)
    assert config.read_text() == template.read_text()  # first use: copied

    template.write_text("run_coordinator: {max_concurrent_runs: 8}\n")  # the project was upgraded
    install_instance_config(template, config)
    assert config.read_text() == template.read_text()  # an untouched copy follows it

    config.write_text("run_coordinator: {max_concurrent_runs: 2}  # ours\n")  # the operator's own setting
    template.write_text("run_coordinator: {max_concurrent_runs: 16}\n")
    with caplog.at_level(logging.WARNING, logger="event_pipeline"):
        install_instance_config(template, config)
    assert config.read_text() == "run_coordinator: {max_concurrent_runs: 2}  # ours\n"  # edits win
    assert "was edited; leaving it as it is" in caplog.text


def test_a_home_on_the_postgres_variant_is_not_called_edited(tmp_path, caplog):
    """Copying the shipped dagster.postgres.yaml into the home, as docs/deploy.md says, is no edit."""
    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir(), home.mkdir()
    template, variant = project / "dagster.yaml", project / "dagster.postgres.yaml"
    template.write_text("run_coordinator: {max_concurrent_runs: 4}\n")
    variant.write_text("run_coordinator: {max_concurrent_runs: 4}\nstorage: {postgres: {}}\n")
    config = home / "dagster.yaml"
    config.write_bytes(variant.read_bytes())
    with caplog.at_level(logging.WARNING, logger="event_pipeline"):
        install_instance_config(template, config)
    assert config.read_bytes() == variant.read_bytes()  # kept: the operator's choice of storage
    assert caplog.text == ""
    config.write_text("run_coordinator: {max_concurrent_runs: 2}\nstorage: {postgres: {}}\n")  # now edited
    with caplog.at_level(logging.WARNING, logger="event_pipeline"):
        install_instance_config(template, config)
    assert "was edited; leaving it as it is" in caplog.text


def test_an_installed_wheel_creates_its_data_home_with_the_projects_instance_settings(tmp_path):
    """Built and installed as a user would (no checkout beside it): the wheel carries both instance files, and
    the first command makes ``$XDG_DATA_HOME/event-pipeline/dagster_home/dagster.yaml`` equal to the repo's."""
    repo = settings.PROJECT_DIR
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path, repo],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = tmp_path.glob("event_pipeline-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        for name in ("dagster.yaml", "dagster.postgres.yaml"):
            assert archive.read(f"event_pipeline/{name}") == (repo / name).read_bytes()  # the root links to it
        archive.extractall(tmp_path / "site")  # what pip puts in site-packages
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT_PIPELINE_", "DAGSTER_"))}
    env.update(PYTHONPATH=str(tmp_path / "site"), XDG_DATA_HOME=str(tmp_path / "xdg"))
    probe = "import event_pipeline.settings as s; print(s.PACKAGE_DIR); print(s.dagster_home())"
    ran = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr[-3000:]
    package, home = ran.stdout.split()
    assert package == str(tmp_path / "site" / "event_pipeline")  # the installed copy, not the checkout
    assert home == str(tmp_path / "xdg" / "event-pipeline" / "dagster_home")
    assert (tmp_path / "xdg" / "event-pipeline" / "dagster_home" / "dagster.yaml").read_bytes() == (
        repo / "dagster.yaml"
    ).read_bytes()


def test_a_home_from_before_the_stamp_is_left_alone_unless_identical(tmp_path):
    template, config = tmp_path / "project.yaml", tmp_path / "dagster.yaml"
    template.write_text("a: 1\n")
    config.write_text("a: 0\n")  # written by an older version, or by hand: cannot tell, so kept
    install_instance_config(template, config)
    assert config.read_text() == "a: 0\n"


# --- the one settings object -----------------------------------------------------------------


def test_readme_settings_table_is_the_settings_object():
    readme = (settings.PROJECT_DIR / "README.md").read_text()
    begin, end = "<!-- settings-table:begin -->\n", "<!-- settings-table:end -->"
    table = readme[readme.index(begin) + len(begin) : readme.index(end)]
    assert table == settings.markdown_table()  # regenerate with: python -m event_pipeline.settings


def test_every_variable_the_code_names_is_a_setting_and_only_settings_reads_them():
    package = settings.PACKAGE_DIR
    named, readers = set(), []
    for path in package.rglob("*.py"):
        text = path.read_text()
        named |= set(re.findall(r"EVENT_PIPELINE_[A-Z_]*[A-Z](?![A-Za-z_<*])", text))
        if path.name != "settings.py" and re.search(r"(os\.environ|os\.getenv)[^\n]*EVENT_PIPELINE_", text):
            readers.append(path.relative_to(package).as_posix())
    for path in [*(settings.PROJECT_DIR / "deploy").iterdir(), *(settings.PROJECT_DIR / "docs").glob("*.md")]:
        named |= set(re.findall(r"EVENT_PIPELINE_[A-Z_]*[A-Z](?![A-Za-z_<*])", path.read_text()))  # what operators set
    fields = {settings.variable(name) for name in settings.Settings.model_fields}
    assert named - fields == set()  # "EVENT_PIPELINE_<NAME>", "_MEDIA_FETCH_*" name none
    assert len(fields) >= 30 and "DAGSTER_HOME" in fields
    assert readers == []  # no module reads an EVENT_PIPELINE_ variable itself


def test_a_changed_variable_is_seen_at_once_and_empty_means_unset(monkeypatch):
    monkeypatch.setenv("EVENT_PIPELINE_MAX_MEMBERS", "7")
    assert Limits.from_env().max_members == 7
    monkeypatch.setenv("EVENT_PIPELINE_MAX_MEMBERS", "9")
    assert Limits.from_env().max_members == 9
    monkeypatch.setenv("EVENT_PIPELINE_MAX_MEMBERS", "")
    assert Limits.from_env().max_members == 20_000  # README: 20 000 members
    monkeypatch.setenv("EVENT_PIPELINE_MEDIA_FETCH_HOSTS", "a.example, b.example:8080")
    assert FetchPolicy.from_env().hosts == {"a.example", "b.example:8080"}


def test_a_bad_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("EVENT_PIPELINE_LOCK_TIMEOUT", "soon")
    with pytest.raises(settings.SettingsError, match=r"EVENT_PIPELINE_LOCK_TIMEOUT='soon'"):
        settings.current()


def test_database_url_is_an_env_var_in_the_code_location_and_sqlite_when_unset(monkeypatch, tmp_path):
    monkeypatch.setenv("EVENT_PIPELINE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("EVENT_PIPELINE_DATABASE_URL", raising=False)
    unset = DatabaseResource.from_settings()
    assert unset.url is None and unset.resolved_url() == f"sqlite:///{tmp_path / 'events.db'}"
    monkeypatch.setenv("EVENT_PIPELINE_DATABASE_URL", "sqlite:///elsewhere.db")
    bound = DatabaseResource.from_settings()
    # Dagster keeps the variable's name as the resource's config (what the launchpad shows), never its value.
    assert _config_default(bound) == {"url": {"env": "EVENT_PIPELINE_DATABASE_URL"}}
    monkeypatch.setenv("EVENT_PIPELINE_MEDIA_ROOT", str(tmp_path / "m"))
    monkeypatch.delenv("EVENT_PIPELINE_MEDIA_URL", raising=False)
    monkeypatch.delenv("EVENT_PIPELINE_MEDIA_BASE_URL", raising=False)
    media = _config_default(MediaStorageResource.from_settings())
    assert media == {"root": {"env": "EVENT_PIPELINE_MEDIA_ROOT"}, "url": None, "base_url": None}


def _config_default(resource: dg.ConfigurableResource) -> object:
    field = resource.get_resource_definition().config_schema.as_field()
    return field.default_value if field.default_provided else None
