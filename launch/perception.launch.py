"""ros2 launch finers_ros perception.launch.py [namespace:=...] [config:=...] [camera_topic:=...] [use_rviz:=true]

Starts finers_perception with config/perception.yaml (the same file `finers-perception`
uses without a launch system), optionally RViz with rviz/finers.rviz.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare("finers_ros")
    namespace = LaunchConfiguration("namespace")
    arguments = [
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
        DeclareLaunchArgument("config", default_value=PathJoinSubstitution([share, "config", "perception.yaml"]),
                              description="node parameters file"),
        DeclareLaunchArgument("camera_topic", default_value="/camera/image_raw",
                              description="sensor_msgs/Image topic of the camera"),
        DeclareLaunchArgument("use_rviz", default_value="false", description="start RViz with rviz/finers.rviz"),
        DeclareLaunchArgument("fastdds_profile", default_value="",
                              description="Fast DDS XML profile (e.g. the shipped config/fastdds_shm.xml for 4K "
                                          "frames on one host); the camera driver needs the same profile"),
    ]
    node = Node(
        package="finers_ros",
        executable="perception_node",
        name="finers_perception",
        namespace=namespace,
        parameters=[LaunchConfiguration("config")],
        remappings=[("/camera/image_raw", LaunchConfiguration("camera_topic"))],
        output="screen",
        emulate_tty=True,
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="finers_rviz",
        namespace=namespace,
        arguments=["-d", PathJoinSubstitution([share, "rviz", "finers.rviz"])],
        remappings=[("/camera/image_raw", LaunchConfiguration("camera_topic"))],
        condition=IfCondition(LaunchConfiguration("use_rviz")),
    )
    profile = SetEnvironmentVariable(
        "FASTDDS_DEFAULT_PROFILES_FILE", LaunchConfiguration("fastdds_profile"),
        condition=IfCondition(PythonExpression(["'", LaunchConfiguration("fastdds_profile"), "' != ''"])))
    return LaunchDescription(arguments + [profile, node, rviz])
