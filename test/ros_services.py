"""
Service calls from a test's client node that hold on a busy machine.

``wait_for_service`` sees the server in the graph, but a reply the server sends before its
reply writer matched this client is lost. Each client is therefore probed once with a
harmless request (resent until a reply comes back) before its first real call; real calls
are then sent once (a lifecycle transition must not be repeated).
"""
from __future__ import annotations

import time

TIMEOUT = 60.0
PROBE_WAIT_S = 2.0


def wait_future(future, timeout: float = TIMEOUT):
    """Return the future's result; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not future.done():
        assert time.monotonic() < deadline, "future timed out"
        time.sleep(0.02)
    return future.result()


def _probe(service_type):
    """Build a request of ``service_type`` that changes nothing on the server."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState
    from rcl_interfaces.srv import GetParameters, SetParameters

    if service_type is ChangeState:  # an unknown label: refused, state unchanged
        return ChangeState.Request(transition=Transition(label="finers_test_probe"))
    if service_type is SetParameters:
        return SetParameters.Request(parameters=[])
    if service_type is GetParameters:
        return GetParameters.Request(names=[])
    return service_type.Request()


class Services:
    """Lifecycle and parameter services of finers_perception nodes, called reliably."""

    def __init__(self, node):
        self.node = node
        self._clients = {}

    def call(self, service_type, name: str, request, timeout: float = TIMEOUT):
        """One real call of service ``name`` (probed first); its response."""
        client = self._clients.get(name)
        if client is None:
            client = self.node.create_client(service_type, name)
            assert client.wait_for_service(timeout_sec=timeout), f"no service {name}"
            deadline = time.monotonic() + timeout
            while True:
                future = client.call_async(_probe(service_type))
                try:
                    wait_future(future, PROBE_WAIT_S)
                    break
                except AssertionError:
                    assert time.monotonic() < deadline, f"{name} never answered"
            self._clients[name] = client
        return wait_future(client.call_async(request), timeout)

    def change_state(self, node_name: str, transition_id: int) -> bool:
        """Trigger one lifecycle transition; True when it succeeded."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        request = ChangeState.Request(transition=Transition(id=transition_id))
        return self.call(ChangeState, f"{node_name}/change_state", request).success

    def state(self, node_name: str) -> str:
        """Return the node's lifecycle state label."""
        from lifecycle_msgs.srv import GetState

        reply = self.call(GetState, f"{node_name}/get_state", GetState.Request())
        return reply.current_state.label

    def set_parameter(self, node_name: str, parameter: str, value):
        """``ros2 param set``: (successful, reason)."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        message = Parameter(parameter, value=value).to_parameter_msg()
        request = SetParameters.Request(parameters=[message])
        result = self.call(SetParameters, f"{node_name}/set_parameters", request).results[0]
        return result.successful, result.reason

    def get_parameter(self, node_name: str, parameter: str):
        """``ros2 param get``: the value."""
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        reply = self.call(GetParameters, f"{node_name}/get_parameters",
                          GetParameters.Request(names=[parameter]))
        return parameter_value_to_python(reply.values[0])

    def close(self) -> None:
        """Destroy the service clients."""
        for client in self._clients.values():
            self.node.destroy_client(client)
        self._clients = {}
