"""wf pause / wf resume: stop and restart dispatching new jobs (running jobs finish)."""

from __future__ import annotations

import argparse

from wf_cli.client import HubClient


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    sub.add_parser("pause", help="start no new jobs (running ones finish)", parents=[parent]).set_defaults(
        func=pause
    )
    sub.add_parser("resume", help="start jobs again after wf pause", parents=[parent]).set_defaults(
        func=resume
    )


def pause(args: argparse.Namespace, client: HubClient) -> int:
    client.post("/api/control/pause")
    print("paused: running jobs finish, no new jobs start until `wf resume`")
    return 0


def resume(args: argparse.Namespace, client: HubClient) -> int:
    client.post("/api/control/resume")
    print("resumed: queued tasks are dispatched again")
    return 0
