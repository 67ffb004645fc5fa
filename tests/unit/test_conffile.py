"""One reader of [executors.ecs]: a covalent.conf file (the CLI) or Covalent's loaded
configuration (the executor inside a Covalent server)."""

from __future__ import annotations

import pytest

from covalent_ecs_executor.config import plugin_defaults
from covalent_ecs_executor.errors import ConfigError
from covalent_ecs_executor.setup.conffile import read_executor_section, write_covalent_conf


def test_a_written_block_reads_back_and_other_sections_stay(tmp_path):
    path = tmp_path / "covalent.conf"
    path.write_text('[sdk]\nlog_level = "debug"\n')
    write_covalent_conf(str(path), {"region": "us-east-1", "vcpu": 1})
    assert read_executor_section(str(path)) == {"region": "us-east-1", "vcpu": 1}
    assert '[sdk]' in path.read_text()


def test_no_file_and_no_section_both_mean_no_section(tmp_path):
    assert read_executor_section(str(tmp_path / "absent.conf")) is None
    (tmp_path / "other.conf").write_text('[executors.local]\nlog_stdout = "o"\n')
    assert read_executor_section(str(tmp_path / "other.conf")) is None


def test_invalid_toml_is_a_config_error_naming_the_file_and_line(tmp_path):
    path = tmp_path / "covalent.conf"
    path.write_text('[sdk]\nlog_level = "debug"\n[executors.ecs\n')
    with pytest.raises(ConfigError, match=rf"{path} is not valid TOML: line 3, column 1"):
        read_executor_section(str(path))


def test_a_section_that_is_not_a_table_is_named(tmp_path):
    path = tmp_path / "covalent.conf"
    path.write_text("[executors]\necs = 3\n")
    with pytest.raises(ConfigError, match="executors.ecs is 3, not a"):
        read_executor_section(str(path))


def test_without_a_path_it_is_what_covalent_loaded():
    # Covalent writes every installed plugin's defaults into its configuration on import
    # (tests/conftest.py points it at a fresh folder); a Covalent server fixture earlier
    # in the session may have set the sandbox's values since. Either way, the reader
    # gives what Covalent holds, with every key of ours.
    import covalent  # noqa: F401
    from covalent._shared_files.config import get_config

    section = read_executor_section(None)
    assert section is not None
    assert section == dict(get_config("executors.ecs"))
    assert set(plugin_defaults()) <= set(section)
