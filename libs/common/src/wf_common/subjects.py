"""Every NATS name Workflow Hub uses: streams, subjects, consumers and KV buckets.

Operators use the standard `nats` CLI against these, e.g.::

    nats sub 'wf.events.>'                  # everything that happens
    nats sub 'wf.events.listsnap.T-002.>'   # one task
    nats consumer info WF_JOBS dev          # the DEV job queue
    nats kv get wf_control paused

docs/architecture.md describes what flows on each.
"""

from __future__ import annotations

import re

JOBS_STREAM = "WF_JOBS"
RESULTS_STREAM = "WF_RESULTS"
EVENTS_STREAM = "WF_EVENTS"

JOBS_PREFIX = "wf.jobs"
RESULTS_PREFIX = "wf.results"
EVENTS_PREFIX = "wf.events"
COMMANDS_PREFIX = "wf.cmd"

ADVISORIES_STREAM = "WF_ADVISORIES"

RESULTS_CONSUMER = "orchestrator"
# Durable consumers of the orchestrator on WF_ADVISORIES and on WF_EVENTS (execution.started/waiting).
ADVISORIES_CONSUMER = "orchestrator"
RUNNER_EVENTS_CONSUMER = "orchestrator-runner-events"
COMMANDS_QUEUE = "orchestrator"
# The sync bridge's durable consumer on WF_EVENTS (the bridge makes it; its login may make only it).
SYNC_BRIDGE_CONSUMER = "sync-bridge"

CONTROL_BUCKET = "wf_control"
PAUSED_KEY = "paused"
RUNNERS_BUCKET = "wf_runners"
# The orchestrator lease: the active instance holds key `active` (TTL = orchestrator.lease_ttl_seconds).
LEASE_BUCKET = "wf_orchestrator"
LEASE_KEY = "active"

# JetStream tells us when a job ran out of deliveries; the orchestrator fails its task.
# Stored in WF_ADVISORIES so that one sent while the orchestrator is down is still handled.
MAX_DELIVERIES_ADVISORY = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{JOBS_STREAM}.*"
# What runners report about a job that the orchestrator must record (durably, on WF_EVENTS).
RUNNER_EVENT_SUBJECTS = (
    f"{EVENTS_PREFIX}.*.*.execution.started",
    f"{EVENTS_PREFIX}.*.*.execution.waiting",
)

# Tokens that are safe in a subject: no dots, spaces or wildcards.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
SYSTEM_TOKEN = "_"  # noqa: S105 - a name, not a password


def token(value: str) -> str:
    if not _TOKEN.match(value):
        raise ValueError(f"{value!r} cannot be used in a NATS subject (letters, digits, - and _ only)")
    return value


def job_subject(stage: str) -> str:
    return f"{JOBS_PREFIX}.{token(stage)}"


def job_consumer(stage: str) -> str:
    """The durable pull consumer all runners of a stage share."""
    return token(stage)


def result_subject(stage: str) -> str:
    return f"{RESULTS_PREFIX}.{token(stage)}"


def event_subject(project: str | None, task_key: str | None, event_type: str) -> str:
    """wf.events.<project>.<task key>.<type> where type is dotted, e.g. task.stage_changed."""
    p = token(project) if project else SYSTEM_TOKEN
    t = token(task_key) if task_key else SYSTEM_TOKEN
    return f"{EVENTS_PREFIX}.{p}.{t}.{event_type}"


def command_subject(name: str, sender: str | None = None) -> str:
    """wf.cmd.<sender>.<name>: a command sent with the NATS login `sender` (wf_common.commands.SENDERS
    says which actors each may name; on the embedded server a login can publish on its own only).
    Without a sender, wf.cmd.<name>: which only the orchestrator's own login may publish on there."""
    if sender is None:
        return f"{COMMANDS_PREFIX}.{token(name)}"
    return f"{COMMANDS_PREFIX}.{token(sender)}.{token(name)}"
