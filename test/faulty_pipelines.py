"""
Pipelines for the node tests, loaded by the node through its ``pipeline_factory`` parameter.

``flaky`` wraps the real bring-up pipeline: instructions containing "explode" raise,
"hang" sleeps past any test timeout; everything else is served normally.
"""
import os
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


class RemoteOutagePipeline(FlakyPipeline):
    """
    A remote model server that is down while the file ``$FINERS_TEST_OUTAGE_FILE`` exists.

    Warm-up and runs then raise the openai backend's own ``ServerError``, as a vLLM server
    that is unreachable does; once the file is removed, requests are served normally.
    """

    def __init__(self):
        super().__init__()
        self.backend_name = "openai:outage+" + self.inner.backend_name
        self.outage_file = os.environ["FINERS_TEST_OUTAGE_FILE"]

    def _check_server(self):
        from finers_ros.stages.openai_server import ServerError

        if os.path.exists(self.outage_file):
            raise ServerError("model server unreachable at http://127.0.0.1:9/v1 after 1 "
                              "attempts: cannot connect (connection refused)")

    def warmup(self):
        self._check_server()
        return self.inner.warmup()

    def run(self, image, instruction, question_type="referring", options=None, progress=None):
        self._check_server()
        return super().run(image, instruction, question_type, options, progress)


def remote_outage():
    return RemoteOutagePipeline()
