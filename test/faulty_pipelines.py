"""Pipelines for the node tests, loaded by the node through its ``pipeline_factory`` parameter.

``flaky`` wraps the real bring-up pipeline: instructions containing "explode" raise,
"hang" sleeps past any test timeout; everything else is served normally.
"""
import time

from finers_ros.pipeline import FineRSPipeline


class FlakyPipeline:
    def __init__(self):
        self.inner = FineRSPipeline.from_config(None)
        self.backend_name = "flaky+" + self.inner.backend_name

    def run(self, image, instruction, question_type="referring", options=None, progress=None):
        if "explode" in instruction:
            raise RuntimeError("simulated model crash")
        if "hang" in instruction:
            for _ in range(300):
                time.sleep(0.1)
                if progress:
                    progress("gse")  # lets an abandoned run stop early
        return self.inner.run(image, instruction, question_type, options, progress=progress)

    def close(self):
        self.inner.close()


def flaky():
    return FlakyPipeline()
