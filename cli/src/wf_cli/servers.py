"""NATS and PostgreSQL for `wf start`: embedded under the data directory, or external when configured.

A server is external when its URL is set, in the environment (WF_NATS_URL / WF_DATABASE_URL, which
the services would prefer too) or in the config file (nats.url / database.url). Otherwise it runs
here: nats-server with JetStream on `<data>/nats`, PostgreSQL (durable) on `<data>/postgres`. Both
remember their ports in their own directories and prefer them on the next start, so URLs stay the
same across restarts.

Embedded servers require credentials (wf_cli.credentials): NATS a user per kind of service, each
with its permissions; PostgreSQL SCRAM passwords, with three roles: `postgres` (superuser, used
here only), `wf_orchestrator` (owns the `workflow` database: the orchestrator and its migrations)
and `wf_board` (SELECT only, read-only transactions: the board API). `nats_url_for(kind)` and
`database_url_for(kind)` hold those credentials; `state()` (run.json) never does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from wf_common.config import WorkflowConfig
from wf_common.settings import async_database_url
from wf_common.urls import redact_url as redact

from wf_cli.credentials import PG_OWNER, PG_READER, PG_SUPERUSER, Credentials, load_credentials
from wf_cli.datadir import DataDir
from wf_cli.embedded import EmbeddedPostgres, NatsServer
from wf_cli.embedded.postgres import quote_ident, quote_literal

log = logging.getLogger(__name__)

DATABASE = "workflow"


class Servers:
    def __init__(
        self,
        data: DataDir,
        config: WorkflowConfig,
        env: Mapping[str, str],
        credentials: Credentials | None = None,
    ) -> None:
        self.data = data
        token = config.board.token.get_secret_value() if config.board.token else None
        self.credentials = credentials or load_credentials(data, token)
        self.external_nats = env.get("WF_NATS_URL") or config.nats.url
        external_db = env.get("WF_DATABASE_URL") or config.database.url
        # Raises ConfigError (naming the URL) for anything but PostgreSQL.
        self.external_database = async_database_url(external_db) if external_db else None
        self.nats: NatsServer | None = None
        self.postgres: EmbeddedPostgres | None = None

    @property
    def nats_url(self) -> str:
        """The orchestrator's NATS URL (with its credentials when embedded)."""
        return self.nats_url_for("orchestrator")

    @property
    def database_url(self) -> str:
        """The database owner's URL (with its password when embedded)."""
        url = self.database_url_for("orchestrator")
        if url is None:
            raise RuntimeError("the orchestrator always has a database")
        return url

    def nats_url_for(self, kind: str) -> str:
        """NATS URL for a service of `kind` (wf_cli.credentials.NATS_KINDS), holding its login."""
        if self.external_nats:
            return self.external_nats
        if self.nats is None:
            raise RuntimeError("start_nats() first")
        return self.nats.url_for(kind)

    def database_url_for(self, kind: str) -> str | None:
        """Database URL for a service of `kind`: the owner, the read-only role, or None (no database)."""
        if kind == "runner":
            return None  # runners talk to NATS only
        if self.external_database:
            return self.external_database
        if self.postgres is None:
            raise RuntimeError("start_postgres() first")
        role = PG_READER if kind == "board" else PG_OWNER
        return self.postgres.async_url(DATABASE, role=role, password=self.credentials.postgres[role])

    def start_nats(self) -> str:
        """Blocking; the URL services connect to."""
        if self.external_nats:
            log.info("using external NATS at %s", redact(self.external_nats))
            return self.external_nats
        self.nats = NatsServer(
            self.data.nats, log_file=self.data.log("nats"), users=self.credentials.nats_users()
        )
        self.nats.start()
        log.info("NATS (JetStream) ready at %s, pid %s", self.nats.url, self.nats.pid)
        return self.nats.url

    def start_postgres(self) -> str:
        """Blocking: start PostgreSQL and create the `workflow` database if it is missing."""
        if self.external_database:
            log.info("using external PostgreSQL at %s", redact(self.external_database))
            return self.external_database
        self.postgres = EmbeddedPostgres(
            self.data.postgres,
            durable=True,
            log_file=self.data.log("postgres"),
            password=self.credentials.postgres[PG_SUPERUSER],
        )
        self.postgres.start()
        prepare_roles(self.postgres, self.credentials)
        log.info("PostgreSQL ready at %s/%s, pid %s", self.postgres.where, DATABASE, self.postgres.pid)
        return self.database_url

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
                "url": f"postgresql+asyncpg://{self.postgres.where}/{DATABASE}",
                "roles": {"owner": PG_OWNER, "board": PG_READER},
                "embedded": True,
                "pid": self.postgres.pid,
                "port": self.postgres.port,
                "data_dir": str(self.postgres.data_dir),
            }
        else:
            db["embedded"] = False
        return {"nats": nats, "postgres": db}


def prepare_roles(pg: EmbeddedPostgres, credentials: Credentials) -> None:
    """The `workflow` database owned by `wf_orchestrator`, and `wf_board` that can only read it.

    Idempotent, run at every start: passwords are (re)set from the secrets, and a database made
    before these roles existed (owned by the superuser) is handed over to the owner role.
    """
    owner, reader = quote_ident(PG_OWNER), quote_ident(PG_READER)
    pg.ensure_login_role(PG_OWNER, credentials.postgres[PG_OWNER])
    pg.ensure_login_role(PG_READER, credentials.postgres[PG_READER])
    pg.psql(f"ALTER ROLE {reader} SET default_transaction_read_only = on")
    exists = pg.psql(f"SELECT 1 FROM pg_database WHERE datname = {quote_literal(DATABASE)}")  # noqa: S608
    if not exists.strip():
        pg.psql(f"CREATE DATABASE {quote_ident(DATABASE)} OWNER {owner}")
        log.info("created database %s", DATABASE)
    db = quote_ident(DATABASE)
    pg.psql(f"ALTER DATABASE {db} OWNER TO {owner}; REVOKE ALL ON DATABASE {db} FROM PUBLIC")
    pg.psql(f"GRANT CONNECT ON DATABASE {db} TO {reader}")
    pg.psql(_HAND_OVER.format(owner=quote_literal(PG_OWNER)), database=DATABASE)
    pg.psql(
        f"REVOKE CREATE ON SCHEMA public FROM PUBLIC; GRANT USAGE ON SCHEMA public TO {reader}; "
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader}; "
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT SELECT ON TABLES TO {reader}",
        database=DATABASE,
    )
    # The sync bridge's schema (its migrations fill it, as the owner): the board reads it for `wf sync`.
    pg.psql(
        f"CREATE SCHEMA IF NOT EXISTS sync AUTHORIZATION {owner}; GRANT USAGE ON SCHEMA sync TO {reader}; "
        f"GRANT SELECT ON ALL TABLES IN SCHEMA sync TO {reader}; "
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA sync GRANT SELECT ON TABLES TO {reader}",
        database=DATABASE,
    )


# Tables, views and free-standing sequences of `public` not owned by the owner role yet (a database
# made before the roles existed); sequences of serial columns follow their table.
_HAND_OVER = """
DO $$
DECLARE r record;
BEGIN
  FOR r IN
    SELECT c.oid::regclass AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND pg_get_userbyid(c.relowner) <> {owner}
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype IN ('a', 'i'))
  LOOP
    EXECUTE format('ALTER TABLE %s OWNER TO %I', r.name, {owner});
  END LOOP;
  FOR r IN
    SELECT t.oid::regtype AS name FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd') AND pg_get_userbyid(t.typowner) <> {owner}
  LOOP
    EXECUTE format('ALTER TYPE %s OWNER TO %I', r.name, {owner});
  END LOOP;
END $$;
"""
