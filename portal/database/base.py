"""The database engine (``ENGINE = "portal.database"``): Django's PostgreSQL backend, whose
requests ask the pool for a connection until the database has failed them once."""

import contextlib

import psycopg
from django.db.backends.postgresql import base

from portal import database


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        """A connection from the pool, its checks within the pool's timeout -- unless this
        request already found the database unavailable: then the same error at once, rather
        than the pool's timeout again."""
        if reason := database.known_unavailable():
            raise psycopg.OperationalError(f"the database is unavailable: {reason}")
        pool = self.pool
        try:
            with database.checking_out(pool.timeout) if pool else contextlib.nullcontext():
                return super().get_new_connection(conn_params)
        except psycopg.OperationalError as exc:
            database.found_unavailable(" ".join(str(exc).split())[:200])
            raise
