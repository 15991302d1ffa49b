"""What the fleet's size costs a deploy: `sam build` time at 3 and 50 services, and the bytes
`sam deploy` uploads after a one-line change to mcp_common.

Measured in a throwaway copy of the workspace grown with `fleet new`. Uploads go to S3 on a
moto server: `sam package` (what `sam deploy` runs first) skips every artifact whose content
hash is already there, so the bytes it uploads are exactly what a deploy would send.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from fleet.new import create_service
from fleet.testing import AWS_TEST_ENV, copy_workspace, moto_server
from fleet.workspace import service_dirs

BUCKET = "fleet-bench-artifacts"
CHANGED_MODULE = Path("packages/mcp_common/src/mcp_common/__init__.py")


@dataclass
class ScalePoint:
    services: int
    build_seconds: float
    first_upload_bytes: int
    change_upload_bytes: int
    change_uploads: list[tuple[str, int]] = field(default_factory=list)


def _sam(clone: Path, env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        ["uv", "run", "--frozen", "sam", *args],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"sam {args[0]} failed:\n{(result.stdout + result.stderr)[-3000:]}")


def _objects(s3) -> dict[str, int]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}


def _package(clone: Path, env: dict[str, str], s3) -> dict[str, int]:
    """What a deploy uploads now: the objects `sam package` uploaded this time ({key: bytes}),
    and the packaged root template, which `sam deploy` uploads on every deploy."""
    before = _objects(s3)
    _sam(clone, env, "package", "--s3-bucket", BUCKET, "--output-template-file", "packaged.yaml")
    uploaded = {key: size for key, size in _objects(s3).items() if key not in before}
    uploaded["packaged.yaml (the root template)"] = (clone / "packaged.yaml").stat().st_size
    return uploaded


def _measure(clone: Path, env: dict[str, str], s3, log) -> ScalePoint:
    count = len(service_dirs(clone))
    log(f"sam build at {count} services")
    started = time.perf_counter()
    _sam(clone, env, "build")
    seconds = time.perf_counter() - started
    first = _package(clone, env, s3)
    module = clone / CHANGED_MODULE
    module.write_text(module.read_text() + f"# a one-line change ({count} services)\n")
    _sam(clone, env, "build")
    changed = _package(clone, env, s3)
    log(
        f"{count} services: sam build {seconds:.1f} s; a one-line mcp_common change uploads "
        f"{sum(changed.values()):,} bytes in {len(changed)} objects"
    )
    return ScalePoint(
        count, seconds, sum(first.values()), sum(changed.values()), sorted(changed.items())
    )


def measure_scale(
    root: Path, work: Path, log, sizes: tuple[int, ...] = (3, 50)
) -> list[ScalePoint]:
    """Build and package a copy of the workspace at each size in `sizes` (grown with fleet new)."""
    import logging

    import boto3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    clone = copy_workspace(root, work / "scale")
    log("preparing a copy of the workspace (its own uv environment)")
    subprocess.run(["uv", "sync", "--frozen", "--quiet"], cwd=clone, check=True)
    points = []
    with moto_server() as endpoint:
        env = {
            **os.environ,
            **AWS_TEST_ENV,
            "AWS_ENDPOINT_URL": endpoint,
            "SAM_CLI_TELEMETRY": "0",
            "FLEET_ROOT": str(clone),
        }
        env.pop("VIRTUAL_ENV", None)
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=AWS_TEST_ENV["AWS_DEFAULT_REGION"],
            aws_access_key_id=AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
        )
        s3.create_bucket(Bucket=BUCKET)
        for size in sizes:
            added = 0
            while len(service_dirs(clone)) < size:
                added += 1
                create_service(clone, f"bench_{added:03d}", lock=False, log=lambda _: None)
            if added:
                subprocess.run(["uv", "lock", "--quiet"], cwd=clone, check=True)
                log(f"grew the copy to {size} services with fleet new")
            points.append(_measure(clone, env, s3, log))
    return points
