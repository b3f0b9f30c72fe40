"""
Start finers_perception, optionally with RViz.

    ros2 launch finers_ros perception.launch.py [namespace:=...] [config:=...]
        [camera_topic:=...] [pipeline_config:=...] [use_sim_time:=true] [log_level:=debug]
        [autostart:=false] [use_rviz:=true] [fastdds_profile:=...]

The node reads config/perception.yaml (the same file ``finers-perception`` uses without a
launch system). ``camera_topic`` remaps the node's relative ``camera/image_raw`` (and
``camera/image_raw/compressed``). A missing params file, or ``use_rviz:=true`` without
rviz2 installed, stops the launch before anything starts.
"""
import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

CAMERA = "camera/image_raw"


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes", "on")


def _start(context):
    from finers_ros.ros.launch_checks import launch_problems

    def value(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    config, use_rviz = value("config"), _truthy(value("use_rviz"))
    problems = launch_problems(config, use_rviz)
    if problems:
        raise RuntimeError("finers_ros perception.launch.py: " + "; ".join(problems))
    overrides = {"use_sim_time": _truthy(value("use_sim_time")),
                 "autostart": _truthy(value("autostart"))}
    if value("pipeline_config"):
        overrides["pipeline_config"] = value("pipeline_config")
    camera = value("camera_topic")
    remappings = [(CAMERA, camera), (f"{CAMERA}/compressed", f"{camera}/compressed")]
    actions = [Node(
        package="finers_ros",
        executable="perception_node",
        name="finers_perception",
        namespace=value("namespace"),
        parameters=[config, overrides],
        remappings=remappings if camera != CAMERA else [],
        ros_arguments=["--log-level", value("log_level")],
        output="screen",
        emulate_tty=True,
    )]
    if use_rviz:
        share = FindPackageShare("finers_ros").perform(context)
        actions.append(Node(
            package="rviz2",
            executable="rviz2",
            name="finers_rviz",
            namespace=value("namespace"),
            arguments=["-d", os.path.join(share, "rviz", "finers.rviz")],
            parameters=[{"use_sim_time": overrides["use_sim_time"]}],
            remappings=remappings if camera != CAMERA else [],
        ))
    return actions


def generate_launch_description():
    """Arguments, the Fast DDS profile, then the checked start of the node (and RViz)."""
    share = FindPackageShare("finers_ros")
    arguments = [
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the node and its topics"),
        DeclareLaunchArgument("config",
                              default_value=PathJoinSubstitution([share, "config",
                                                                  "perception.yaml"]),
                              description="node parameters file"),
        DeclareLaunchArgument("camera_topic", default_value=CAMERA,
                              description="sensor_msgs/Image topic of the camera (a remap of "
                                          "the node's relative camera/image_raw)"),
        DeclareLaunchArgument("pipeline_config", default_value="",
                              description="core pipeline YAML (overrides the params file's "
                                          "pipeline_config)"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="use /clock (bag replay, simulation)"),
        DeclareLaunchArgument("log_level", default_value="info",
                              description="debug | info | warn | error"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="configure + activate without a lifecycle manager "
                                          "(false: a manager drives the node; configure then "
                                          "fails without a model unless allow_degraded)"),
        DeclareLaunchArgument("use_rviz", default_value="false",
                              description="start RViz with rviz/finers.rviz (needs rviz2)"),
        DeclareLaunchArgument("fastdds_profile", default_value="",
                              description="Fast DDS XML profile of the node's process (e.g. "
                                          "config/fastdds_shm.xml); 4K frames need it on the "
                                          "camera driver's side"),
    ]
    profile = SetEnvironmentVariable(
        "FASTDDS_DEFAULT_PROFILES_FILE", LaunchConfiguration("fastdds_profile"),
        condition=IfCondition(PythonExpression(
            ["'", LaunchConfiguration("fastdds_profile"), "' != ''"])))
    return LaunchDescription(arguments + [profile, OpaqueFunction(function=_start)])
