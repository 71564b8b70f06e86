"""Board API: the HTTP face of Workflow Hub.

Reads come straight from PostgreSQL in read-only transactions (the orchestrator is the only writer);
writes are forwarded to the orchestrator as NATS commands; live events are streamed from the
WF_EVENTS JetStream stream as Server-Sent Events. `create_app()` builds the FastAPI application.
"""
