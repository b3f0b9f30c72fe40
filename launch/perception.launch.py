"""
Start finers_perception, optionally managed through its lifecycle, optionally with RViz.

    ros2 launch finers_ros perception.launch.py [namespace:=...] [config:=...]
        [camera_namespace:=/camera/camera] [camera_topic:=...] [depth_enabled:=true]
        [depth_topic:=...] [camera_info_topic:=...] [pipeline_config:=...] [record_dir:=...]
        [use_sim_time:=true] [log_level:=debug] [autostart:=false] [lifecycle_managed:=true]
        [use_rviz:=true] [rviz_fixed_frame:=...] [fastdds_profile:=...]

The node reads config/perception.yaml (the same file ``finers-perception`` uses without a
launch system); ``depth_enabled``, ``pipeline_config`` and ``record_dir`` override it when
given. The camera arguments remap the node's relative inputs (finers_ros/ros/launch_topics.py):
``camera_namespace`` derives colour, aligned depth and CameraInfo from the RealSense layout,
each ``*_topic`` names one topic. ``lifecycle_managed:=true`` starts the node as a launch_ros
``LifecycleNode`` with its own ``autostart`` parameter off: the launch (``autostart:=true``)
or a lifecycle manager (``autostart:=false``) is then the only one to configure and
activate it. The node stops by itself when this launch process dies (``--exit-with-parent``:
``ros2 launch`` leaves its children running on SIGTERM). A missing params file, a true/false
argument with another value, or ``use_rviz:=true`` without rviz2 installed stops the launch
before anything starts.
"""
import os

from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, OpaqueFunction,
                            RegisterEventHandler, SetEnvironmentVariable)
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

FLAGS = ("use_sim_time", "autostart", "lifecycle_managed", "use_rviz", "depth_enabled")


def _lifecycle_autostart(node):
    """Configure ``node`` now, activate it once that configure succeeded (launch events)."""
    def change(transition_id):
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                           transition_id=transition_id))

    activate = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
        entities=[change(Transition.TRANSITION_ACTIVATE)]))
    return [activate, change(Transition.TRANSITION_CONFIGURE)]


def _start(context):
    from finers_ros.ros.launch_checks import launch_problems, read_flags
    from finers_ros.ros.launch_topics import camera_topics, remappings

    def value(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    flags, problems = read_flags({name: value(name) for name in FLAGS})
    config = value("config")
    problems = launch_problems(config, bool(flags.get("use_rviz"))) + problems
    if problems:
        raise RuntimeError("finers_ros perception.launch.py: " + "; ".join(problems))
    managed = bool(flags["lifecycle_managed"])
    autostart = flags["autostart"] is not False
    overrides = {"use_sim_time": bool(flags["use_sim_time"]),
                 "autostart": autostart and not managed}
    for name in ("pipeline_config", "record_dir"):
        if value(name):
            overrides[name] = value(name)
    if flags["depth_enabled"] is not None:
        overrides["depth_enabled"] = flags["depth_enabled"]
    remaps = remappings(camera_topics(value("camera_namespace"), value("camera_topic"),
                                      value("depth_topic"), value("camera_info_topic")))
    node_action = LifecycleNode if managed else Node
    node = node_action(
        package="finers_ros",
        executable="perception_node",
        name="finers_perception",
        namespace=value("namespace"),
        arguments=["--exit-with-parent"],
        parameters=[config, overrides],
        remappings=remaps,
        ros_arguments=["--log-level", value("log_level")],
        output="screen",
        emulate_tty=True,
    )
    actions = [node]
    if managed and autostart:
        actions += _lifecycle_autostart(node)
    if flags["use_rviz"]:
        share = FindPackageShare("finers_ros").perform(context)
        actions.append(Node(
            package="rviz2",
            executable="rviz2",
            name="finers_rviz",
            namespace=value("namespace"),
            arguments=["-d", os.path.join(share, "rviz", "finers.rviz"),
                       "-f", value("rviz_fixed_frame")],
            parameters=[{"use_sim_time": overrides["use_sim_time"]}],
            remappings=remaps,
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
        DeclareLaunchArgument("camera_namespace", default_value="",
                              description="camera driver namespace (RealSense: /camera/camera): "
                                          "colour <ns>/color/image_raw, depth "
                                          "<ns>/aligned_depth_to_color/image_raw, CameraInfo "
                                          "<ns>/color/camera_info; '' = the node's own names"),
        DeclareLaunchArgument("camera_topic", default_value="",
                              description="sensor_msgs/Image colour topic (remaps the node's "
                                          "camera/image_raw; wins over camera_namespace)"),
        DeclareLaunchArgument("depth_enabled", default_value="",
                              description="true | false: 3D positions from aligned depth + "
                                          "CameraInfo ('' = as the params file says)"),
        DeclareLaunchArgument("depth_topic", default_value="",
                              description="depth registered to the colour image, 16UC1 mm or "
                                          "32FC1 m (remaps camera/aligned_depth/image_raw)"),
        DeclareLaunchArgument("camera_info_topic", default_value="",
                              description="the colour camera's CameraInfo (remaps "
                                          "camera/camera_info)"),
        DeclareLaunchArgument("pipeline_config", default_value="",
                              description="core pipeline YAML (overrides the params file's "
                                          "pipeline_config)"),
        DeclareLaunchArgument("record_dir", default_value="",
                              description="record answered instructions as MCAP bags here "
                                          "('' = as the params file says)"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="use /clock (bag replay, simulation)"),
        DeclareLaunchArgument("log_level", default_value="info",
                              description="debug | info | warn | error"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="bring the node to active at start (false: a "
                                          "lifecycle manager does; configure then fails "
                                          "without a model unless allow_degraded)"),
        DeclareLaunchArgument("lifecycle_managed", default_value="false",
                              description="start a launch_ros LifecycleNode whose transitions "
                                          "come from this launch (autostart:=true) or a "
                                          "lifecycle manager (autostart:=false), never from "
                                          "the node itself"),
        DeclareLaunchArgument("use_rviz", default_value="false",
                              description="start RViz with rviz/finers.rviz (needs rviz2)"),
        DeclareLaunchArgument("rviz_fixed_frame", default_value="base_link",
                              description="RViz fixed frame (a TF frame linked to the camera's "
                                          "optical frame, or that frame itself)"),
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
