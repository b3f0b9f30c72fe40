"""
Offline reinforcement learning of the FineRS stages (GSE, LPR) on FineRS-4k-format data.

ROS-free; builds on the core ``finers_ros`` (prompts, parsing, geometry, annotations,
metrics) and never the reverse.
"""
