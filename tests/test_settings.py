"""The Dagster home's dagster.yaml follows the project's, unless an operator edited it."""

from __future__ import annotations

import logging

from event_pipeline.settings import install_instance_config


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


def test_a_home_from_before_the_stamp_is_left_alone_unless_identical(tmp_path):
    template, config = tmp_path / "project.yaml", tmp_path / "dagster.yaml"
    template.write_text("a: 1\n")
    config.write_text("a: 0\n")  # written by an older version, or by hand: cannot tell, so kept
    install_instance_config(template, config)
    assert config.read_text() == "a: 0\n"
