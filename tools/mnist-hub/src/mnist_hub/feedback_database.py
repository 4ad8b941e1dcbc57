"""The feedback store's own database and user on an environment's PostgreSQL (staging, production).

The backends connect as ``feedback`` to the database ``feedback``; this creates both when missing
and sets the user's password from FEEDBACK_DB_PASSWORD_FILE on every deploy (so rotating the file
rotates the password). The SQL goes to ``psql`` on stdin, as the server's superuser over its local
socket: the password is never on a command line. The schema inside is the backend's (Alembic).
"""

from __future__ import annotations

DATABASE = "feedback"
USER = "feedback"
PSQL = ("psql", "-U", "mlflow", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q")


# Everything but the password: the names are fixed (DATABASE and USER above).
_ENSURE = """\
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'feedback') THEN CREATE ROLE feedback LOGIN; END IF;
END $$;
ALTER ROLE feedback WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
SELECT 'CREATE DATABASE feedback OWNER feedback'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'feedback')\\gexec
REVOKE ALL ON DATABASE feedback FROM PUBLIC;
GRANT CONNECT ON DATABASE feedback TO feedback;
DO $$ DECLARE registry text; BEGIN
  FOR registry IN SELECT datname FROM pg_database WHERE datname IN ('mlflow', 'mlflow_auth') LOOP
    EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM PUBLIC', registry);
  END LOOP;
END $$;
"""


def ensure_sql(password: str) -> str:
    """Idempotent: the role, its password, the database it owns; nobody else may connect to it,
    and it may not connect to the registry's databases."""
    if not password:
        raise ValueError("the feedback database password is empty")
    # A quoted literal: with standard_conforming_strings (on since PostgreSQL 9.1) only ' is doubled.
    literal = "'" + password.replace("'", "''") + "'"
    return _ENSURE + f"ALTER ROLE feedback PASSWORD {literal};\n"
