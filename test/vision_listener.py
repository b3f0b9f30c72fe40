"""
A subscriber in its own process that decodes vision_msgs topics and prints them as JSON lines.

Usage: ``python vision_listener.py TOPIC=TYPE ...`` with TYPE a ``vision_msgs.msg`` class name
(``/finers/detections_2d=Detection2DArray``). Prints ``{"ready": true}`` once subscribed,
``{"matched": topic}`` when a publisher matched, and one line per message:
``{"topic", "type", "msg"}`` with every field of the decoded message. It ends on SIGINT/SIGTERM.
The environment must carry the vision_msgs install (PYTHONPATH, LD_LIBRARY_PATH).
"""
import array
import json
import signal
import sys

import numpy
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import QoSProfile, ReliabilityPolicy
import vision_msgs.msg


def as_data(value):
    """Return a ROS message as plain JSON data, field by field."""
    if hasattr(value, "get_fields_and_field_types"):
        return {name: as_data(getattr(value, name))
                for name in value.get_fields_and_field_types()}
    if isinstance(value, (list, tuple, array.array, numpy.ndarray)):
        return [as_data(item) for item in list(value)]
    return value.item() if isinstance(value, numpy.generic) else value


def say(data) -> None:
    print(json.dumps(data), flush=True)


def main() -> int:
    rclpy.init()
    node = rclpy.create_node("vision_listener")
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    subscriptions = []
    for spec in sys.argv[1:]:
        topic, type_name = spec.split("=")
        kind = getattr(vision_msgs.msg, type_name)

        def callback(msg, topic=topic, type_name=type_name):
            say({"topic": topic, "type": f"{type(msg).__module__}.{type(msg).__name__}",
                 "msg": as_data(msg)})

        subscriptions.append((topic, node.create_subscription(kind, topic, callback, qos)))
    say({"ready": True})
    matched = set()

    def watch():
        for topic, subscription in subscriptions:
            if topic not in matched and subscription.get_publisher_count() > 0:
                matched.add(topic)
                say({"matched": topic})

    node.create_timer(0.1, watch)
    signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
