"""Launch file, parameter defaults and the console script's argument handling."""
import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_launch_file_parses_and_uses_the_shared_defaults():
    source = (ROOT / "launch" / "perception.launch.py").read_text()
    tree = ast.parse(source)
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description"
               for n in tree.body)
    for needed in ('"perception.yaml"', '"perception_node"', '"finers_perception"', '"use_rviz"',
                   '"namespace"',
                   '"camera_topic"', '"finers.rviz"'):
        assert needed in source


def test_launch_description_builds_where_launch_ros_exists():
    pytest.importorskip("launch_ros")
    import importlib.util

    spec = importlib.util.spec_from_file_location("perception_launch",
                                                  ROOT / "launch" / "perception.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    names = {a.name for a in description.get_launch_arguments()}
    assert {"namespace", "config", "camera_topic", "use_rviz"} <= names


def test_cmake_installs_launch_config_rviz_and_executable():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert "install(DIRECTORY launch config rviz" in cmake
    assert "tools/perception_node DESTINATION lib/${PROJECT_NAME}" in cmake
    assert (ROOT / "tools" / "perception_node").stat().st_mode & 0o111


def test_parameter_file_covers_every_setting():
    from dataclasses import fields

    from finers_ros.ros.params import NodeSettings, parameter_defaults

    defaults = parameter_defaults()
    assert set(defaults) == {f.name for f in fields(NodeSettings)}
    settings = NodeSettings(**defaults).validate()
    assert settings.frame_reliability == "best_effort" and not settings.allow_degraded
    data = yaml.safe_load((ROOT / "config" / "perception.yaml").read_text())
    assert list(data) == ["/**"]


@pytest.mark.parametrize("change, message", [
    ({"frame_reliability": "sometimes"}, "frame_reliability"),
    ({"request_timeout_s": 0.0}, "request_timeout_s=0.0"),
    ({"queue_limit": 0}, "queue_limit=0"),
    ({"pipeline_factory": "nocolon"}, "module:function"),
    ({"pipeline_config": "/no/such/file.yaml"}, "config file not found"),
])
def test_invalid_settings_are_named(change, message):
    from finers_ros.ros.params import NodeSettings, ParameterError, parameter_defaults

    with pytest.raises(ParameterError, match=message):
        NodeSettings(**{**parameter_defaults(), **change}).validate()


def test_command_parsing():
    from finers_ros.commands import parse_command

    assert parse_command("find the red screw")["instruction"] == "find the red screw"
    parsed = parse_command('{"instruction": "which colour", "question_type": "option", '
                           '"options": ["A. red"], "id": 7}')
    assert parsed == {"instruction": "which colour", "question_type": "option",
                      "options": ["A. red"], "request_id": "7", "track": False}
    assert parse_command("{not json")["instruction"] == "{not json"


def test_track_and_stop_track_commands():
    """A track request needs a boolean; stop_track names one track or all."""
    from finers_ros.commands import command_text, parse_command

    assert parse_command('{"instruction": "find it", "track": true}')["track"] is True
    for off in ('false', 'null'):
        command = parse_command('{"instruction": "find it", "track": %s}' % off)
        assert command["track"] is False and "problem" not in command
    for loose in ('"yes"', '1', '"true"', '[true]'):
        command = parse_command('{"instruction": "find it", "track": %s}' % loose)
        assert command["track"] is False  # not silently taken as either
        assert command["problem"] == f"track must be true or false, got {loose}"
    assert parse_command("find it")["track"] is False
    stop = parse_command('{"stop_track": "track-3", "id": "s"}')
    assert stop == {"stop_track": "track-3", "request_id": "s"}
    assert parse_command('{"stop_track": "all"}')["stop_track"] == "all"
    text = command_text("find it", track=True)
    assert parse_command(text) == {"instruction": "find it", "question_type": "referring",
                                   "options": None, "request_id": "", "track": True}
    assert command_text("find it") == "find it"


def test_a_json_command_of_megabytes_keeps_its_id():
    """Its instruction is refused as too long under its id; its client hears back."""
    import json

    from finers_ros.commands import parse_command

    command = parse_command(json.dumps({"instruction": "x" * 3_000_000, "id": "big-1"}))
    assert command["request_id"] == "big-1" and len(command["instruction"]) == 3_000_000


def test_json_command_without_a_string_instruction_keeps_its_id():
    """
    Answer such a command as an empty instruction under its id (an input error).

    Its JSON text is not run as an instruction under a new id the client never hears of.
    """
    from finers_ros.commands import parse_command

    for text in ('{"id": "odd2"}', '{"instruction": null, "id": "odd3"}',
                 '{"instruction": ["find it"], "id": 4}'):
        parsed = parse_command(text)
        assert parsed["instruction"] == "" and parsed["request_id"] in ("odd2", "odd3", "4")
    assert parse_command('{"instruction": "find it"}')["request_id"] == ""


def test_core_never_imports_ros():
    """finers_ros/ros/ is the only place that imports rclpy or message packages."""
    offenders = []
    for path in (ROOT / "finers_ros").rglob("*.py"):
        if "ros" in path.relative_to(ROOT / "finers_ros").parts[:1]:
            continue
        text = path.read_text()
        imports_ros = "import rclpy" in text or "from rclpy" in text
        imports_msgs = "_msgs" in text and "import" in text and ".msg import" in text
        if imports_ros or imports_msgs:
            offenders.append(str(path))
    assert offenders == []


def test_launch_checks_before_starting_anything(tmp_path):
    from finers_ros.ros.launch_checks import launch_problems

    config = tmp_path / "perception.yaml"
    config.write_text("/**: {ros__parameters: {}}\n")
    assert launch_problems(str(config), use_rviz=False) == []
    missing = launch_problems(str(tmp_path / "typo.yaml"), use_rviz=False)
    assert missing == [f"config:={tmp_path / 'typo.yaml'}: params file not found"]
    no_rviz = launch_problems(str(config), use_rviz=True, which=lambda name: None)
    if no_rviz:  # an ament index with rviz2 would make it available
        assert "rviz2 is not installed" in no_rviz[0] and "apt install" in no_rviz[0]
    assert launch_problems(str(config), use_rviz=True, which=lambda name: "/usr/bin/rviz2") == []


def test_launch_file_remaps_the_camera_and_checks_first():
    source = (ROOT / "launch" / "perception.launch.py").read_text()
    for needed in ('"use_sim_time"', '"log_level"', '"pipeline_config"', "launch_problems",
                   "remappings=", "OpaqueFunction"):
        assert needed in source
    # RViz is optional: it must not be an unconditional run-time dependency
    assert "<exec_depend>rviz2</exec_depend>" not in (ROOT / "package.xml").read_text()


def test_license_file_matches_package_xml():
    import xml.etree.ElementTree as ET

    declared = ET.parse(ROOT / "package.xml").getroot().findtext("license")
    text = (ROOT / "LICENSE").read_text()
    assert declared == "Apache-2.0"
    assert "Apache License" in text and "Version 2.0, January 2004" in text
