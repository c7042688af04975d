"""A local S3-compatible server (moto, on 127.0.0.1) for the object-storage tests."""
import os

import pyarrow.fs as pafs
import pytest
from moto.server import ThreadedMotoServer

from conftest import free_port

BUCKET = "forecasts"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on a free loopback port, the AWS variables pointing at it, a bucket."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true",
           "PIVOTAL_CHECKPOINT_DIR": str(tmp_path_factory.mktemp("checkpoints"))}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        pafs.S3FileSystem(endpoint_override=env["AWS_ENDPOINT_URL"], allow_bucket_creation=True).create_dir(BUCKET)
        yield {**os.environ, **env}
    server.stop()
