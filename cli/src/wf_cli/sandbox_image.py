"""`wf sandbox build`: make the agents' sandbox image locally, without a registry.

First the base (deploy/sandbox/build-base.sh: a Debian root filesystem by debootstrap, imported with
`docker import`, cached by a content tag), then deploy/sandbox/Dockerfile on top of it (Node and
Playwright's Chromium libraries, with the host's network for apt). `--base-only` stops after the base
and tags it as the sandbox image: python3, pytest and git, which is what CI uses.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from wf_cli.errors import EXIT_FAILURE

DEFAULT_IMAGE = "wf-sandbox:latest"


def _context() -> Path:
    # cli/src/wf_cli/sandbox_image.py -> the repository's deploy/sandbox
    return Path(__file__).resolve().parents[3] / "deploy" / "sandbox"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sandbox",
        help="the agents' sandbox: `wf sandbox build` makes its image",
        description="Manage the sandbox that agent commands run in (sandbox.backend in config.yaml).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = actions.add_parser(
        "build",
        help="build the sandbox image locally (no registry needed)",
        description="Build the base from a Debian root filesystem (debootstrap, needs root the first "
        "time; cached afterwards), then the full image from deploy/sandbox/Dockerfile.",
    )
    b.add_argument(
        "--image", default=DEFAULT_IMAGE, help=f"name of the image to build (default {DEFAULT_IMAGE})"
    )
    b.add_argument(
        "--base-only",
        action="store_true",
        help="stop after the base image (python3, pytest, git) and tag it as --image",
    )
    b.add_argument(
        "--context", type=Path, default=None, help="directory with the Dockerfile and build-base.sh"
    )
    b.set_defaults(func=build)


def build(args: argparse.Namespace) -> int:
    context: Path = args.context or _context()
    script = context / "build-base.sh"
    if not script.is_file():
        print(f"wf sandbox build: {script} not found; pass --context <repo>/deploy/sandbox", file=sys.stderr)
        return EXIT_FAILURE
    docker = shutil.which("docker")
    if docker is None:
        print(
            "wf sandbox build: the docker command is not installed (apt-get install docker.io)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    extra = [args.image] if args.base_only else []
    done = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        ["/bin/bash", str(script), *extra], check=False, stdout=subprocess.PIPE, text=True, env=os.environ
    )
    if done.returncode != 0:
        print("wf sandbox build: building the base image failed (see above)", file=sys.stderr)
        return EXIT_FAILURE
    base = done.stdout.strip().splitlines()[-1]
    if args.base_only:
        print(f"built {args.image} (base {base})")
        return 0
    full = subprocess.run(  # noqa: S603 - fixed arguments
        [docker, "build", "--network", "host", "--build-arg", f"BASE={base}", "-t", args.image, str(context)],
        check=False,
    )
    if full.returncode != 0:
        print("wf sandbox build: docker build failed (see above)", file=sys.stderr)
        return EXIT_FAILURE
    print(f"built {args.image} (from {base})")
    return 0
