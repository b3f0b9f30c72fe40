"""Pip-install the core library and its console scripts (colcon builds the ROS interfaces)."""
from setuptools import find_packages, setup

setup(
    name="finers_ros",
    version="0.1.0",
    description="Language-driven small-object perception (FineRS) for ROS 2 robots",
    packages=find_packages(include=["finers_ros", "finers_ros.*"]),
    package_data={"finers_ros": ["py.typed"]},
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "finers-segment=finers_ros.cli.segment:main",
            "finers-eval=finers_ros.cli.evaluate:main",
            "finers-make-scenes=finers_ros.cli.make_scenes:main",
            "finers-export-sam=finers_ros.cli.export_sam:main",
            "finers-build-engines=finers_ros.cli.build_engines:main",
            "finers-perception=finers_ros.ros.main:main",
            "finers-demo=finers_ros.ros.demo:main",
        ]
    },
)
