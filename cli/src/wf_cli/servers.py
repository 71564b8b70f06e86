"""NATS and PostgreSQL for `wf start`: embedded under the data directory, or external when configured.

A server is external when its URL is set, in the environment (WF_NATS_URL / WF_DATABASE_URL, which
the services would prefer too) or in the config file (nats.url / database.url). Otherwise it runs
here: nats-server with JetStream on `<data>/nats`, PostgreSQL (durable) on `<data>/postgres`. Both
remember their ports in their own directories and prefer them on the next start, so URLs stay the
same across restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from wf_common.config import WorkflowConfig
from wf_common.embedded import EmbeddedPostgres, NatsServer
from wf_common.embedded.postgres import quote_literal
from wf_common.settings import async_database_url

from wf_cli.datadir import DataDir

log = logging.getLogger(__name__)

DATABASE = "workflow"


def redact(url: str) -> str:
    """A URL without its password, for run.json and the terminal."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class Servers:
    def __init__(self, data: DataDir, config: WorkflowConfig, env: Mapping[str, str]) -> None:
        self.data = data
        self.external_nats = env.get("WF_NATS_URL") or config.nats.url
        external_db = env.get("WF_DATABASE_URL") or config.database.url
        # Raises ConfigError (naming the URL) for anything but PostgreSQL.
        self.external_database = async_database_url(external_db) if external_db else None
        self.nats: NatsServer | None = None
        self.postgres: EmbeddedPostgres | None = None

    @property
    def nats_url(self) -> str:
        if self.external_nats:
            return self.external_nats
        assert self.nats is not None, "start_nats() first"
        return self.nats.url

    @property
    def database_url(self) -> str:
        if self.external_database:
            return self.external_database
        assert self.postgres is not None, "start_postgres() first"
        return self.postgres.async_url(DATABASE)

    def start_nats(self) -> str:
        """Blocking; the URL services connect to."""
        if self.external_nats:
            log.info("using external NATS at %s", redact(self.external_nats))
            return self.external_nats
        self.nats = NatsServer(self.data.nats, log_file=self.data.log("nats"))
        self.nats.start()
        log.info("NATS (JetStream) ready at %s, pid %s", self.nats.url, self.nats.pid)
        return self.nats.url

    def start_postgres(self) -> str:
        """Blocking: start PostgreSQL and create the `workflow` database if it is missing."""
        if self.external_database:
            log.info("using external PostgreSQL at %s", redact(self.external_database))
            return self.external_database
        self.postgres = EmbeddedPostgres(self.data.postgres, durable=True, log_file=self.data.log("postgres"))
        self.postgres.start()
        exists = self.postgres.psql(f"SELECT 1 FROM pg_database WHERE datname = {quote_literal(DATABASE)}")
        if not exists.strip():
            self.postgres.create_database(DATABASE)
            log.info("created database %s", DATABASE)
        log.info("PostgreSQL ready at %s, pid %s", self.postgres.dsn(DATABASE), self.postgres.pid)
        return self.postgres.async_url(DATABASE)

    def stop(self) -> None:
        """Blocking: PostgreSQL first (its clients are gone by now), then NATS, even if that failed."""
        try:
            if self.postgres is not None:
                log.info("stopping PostgreSQL")
                self.postgres.stop()
        finally:
            self.postgres = None
            if self.nats is not None:
                log.info("stopping NATS")
                self.nats.stop()
            self.nats = None

    def state(self) -> dict[str, Any]:
        nats: dict[str, Any] = {"url": redact(self.external_nats) if self.external_nats else None}
        if self.nats is not None:
            nats = {
                "url": self.nats.url,
                "embedded": True,
                "pid": self.nats.pid,
                "port": self.nats.port,
                "monitor_url": self.nats.monitor_url,
                "store_dir": str(self.nats.store_dir),
            }
        else:
            nats["embedded"] = False
        db: dict[str, Any] = {"url": redact(self.external_database) if self.external_database else None}
        if self.postgres is not None:
            db = {
                "url": self.postgres.async_url(DATABASE),
                "embedded": True,
                "pid": self.postgres.pid,
                "port": self.postgres.port,
                "data_dir": str(self.postgres.data_dir),
            }
        else:
            db["embedded"] = False
        return {"nats": nats, "postgres": db}
