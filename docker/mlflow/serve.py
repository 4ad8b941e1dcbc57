"""Start the hub's MLflow tracking server (the `mlflow` Compose service) from its settings.

Settings, all from the environment:
  POSTGRES_HOST (postgres), POSTGRES_PORT (5432), POSTGRES_USER, POSTGRES_DB, and the password in
      POSTGRES_PASSWORD_FILE (or POSTGRES_PASSWORD): the store for runs and the model registry.
      MLFLOW_BACKEND_STORE_URI names another store instead (e.g. sqlite:////mlflow/mlflow.db).
  MLFLOW_ARTIFACTS_DESTINATION  where the artifacts the server proxies live (/mlflow/artifacts).
  MLFLOW_ADMIN_PASSWORD_FILE    turns MLflow's basic-auth app on: every request needs a user; the
      admin (MLFLOW_ADMIN_USERNAME, default admin) is created with this password on the first
      start. Users and permissions live in the database <POSTGRES_DB>_auth, next to the runs.
  Accounts per role, each created (or its password updated) on every start when its password is
  given, so that every write names who made it (docker/mlflow/registry_roles.py has the rules):
      MLFLOW_TRAINING_PASSWORD_FILE  user MLFLOW_TRAINING_USERNAME (training): CI and training runs;
          logs runs, registers versions (EDIT on MODEL_NAME and its experiment), moves no alias.
      MLFLOW_PROMOTER_PASSWORD_FILE  user MLFLOW_PROMOTER_USERNAME (promoter): scripts/promote-model.sh;
          the only account, with MLFLOW_PROMOTERS and the admins, that moves aliases (MANAGE on
          MODEL_NAME: it may delete versions too).
      MLFLOW_SYNC_PASSWORD_FILE      user MLFLOW_SYNC_USERNAME (model-sync): the model syncs; reads only.
  MLFLOW_PROMOTERS, MLFLOW_READ_ONLY_USERS: more user names (comma separated; people's accounts,
      made by the admin in MLflow's UI) who may promote, or may only read.
  MODEL_NAME (mnist-cnn): the registered model (and experiment) the training and promoter accounts edit.
  MLFLOW_AUTH_CACHE_TTL_S (60): how long a worker trusts a user and password it has verified.
      The auth app checks the stored scrypt hash on every request otherwise (~0.5 s of CPU each
      on 2 cores, hundreds per training run); 0 turns the cache off. A password changed or a user
      deleted through the API takes effect at once on the worker that served the change, on the
      others within this many seconds.
  MLFLOW_WORKERS (1), MLFLOW_PORT (5000), MLFLOW_ALLOWED_HOSTS (the Host headers accepted:
      the service name, localhost and private addresses by default).
No password appears on a command line (`ps` shows those): the server reads its store from the
environment, the auth app from its environment and a private configuration file in /tmp.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

DEFAULT_ALLOWED_HOSTS = "mlflow,mlflow:*,localhost,localhost:*,127.0.0.1,127.0.0.1:*,10.*,172.*,192.168.*"


def fail(message: str) -> None:
    sys.exit(f"mlflow-serve: error: {message}")


def secret(name: str) -> str:
    """The value of NAME_FILE's file (a Compose secret), else NAME itself, else empty."""
    if path := os.environ.get(f"{name}_FILE"):
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as error:
            fail(f"{name}_FILE={path} cannot be read: {error.strerror}")
    return os.environ.get(name, "")


def postgres_uri(database: str) -> str:
    user = os.environ.get("POSTGRES_USER", "mlflow")
    password = secret("POSTGRES_PASSWORD")
    if not password:
        fail("no database password: set POSTGRES_PASSWORD_FILE (or MLFLOW_BACKEND_STORE_URI for another store)")
    host = os.environ.get("POSTGRES_HOST", "postgres")
    port = os.environ.get("POSTGRES_PORT", "5432")
    return f"postgresql+psycopg2://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{database}"


def wait_for_postgres(uri: str, timeout: float = 60.0) -> None:
    """PostgreSQL may still be starting (or restarting): retry for a while, then say why not."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with engine.connect():
                return
        except sqlalchemy.exc.OperationalError as error:
            if time.monotonic() > deadline:
                fail(f"PostgreSQL does not answer after {timeout:.0f} s: {error.orig}")
            time.sleep(2)
        finally:
            engine.dispose()


def ensure_database(admin_uri: str, database: str) -> None:
    """Create DATABASE (the auth app's users and permissions) unless it exists."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(admin_uri, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            exists = connection.execute(
                sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}
            ).scalar()
            if not exists:
                connection.execute(sqlalchemy.text(f'CREATE DATABASE "{database}"'))
                print(f"mlflow-serve: created database {database} for users and permissions", flush=True)
    finally:
        engine.dispose()


def write_auth_config(database_uri: str, admin: str, cache_ttl_s: int) -> Path:
    """The auth app's configuration, readable by this user only (it holds the database password)."""
    path = Path(tempfile.mkdtemp(prefix="mlflow-auth-")) / "basic_auth.ini"
    # configparser interpolates '%': a percent-encoded password must be doubled.
    path.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {database_uri.replace('%', '%%')}\n"
        f"admin_username = {admin}\n"
        # Basic auth, plus who may move aliases: registry_roles.py beside this file.
        "authorization_function = registry_roles:authenticate\n"
        f"auth_cache_ttl_seconds = {cache_ttl_s}\n",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


ROLES = {  # role: (user name variable, default user name)
    "TRAINING": ("MLFLOW_TRAINING_USERNAME", "training"),
    "PROMOTER": ("MLFLOW_PROMOTER_USERNAME", "promoter"),
    "SYNC": ("MLFLOW_SYNC_USERNAME", "model-sync"),
}


def role_accounts() -> dict[str, tuple[str, str]]:
    """{role: (user, password)} for each role whose password is given."""
    accounts = {}
    for role, (variable, default) in ROLES.items():
        if password := secret(f"MLFLOW_{role}_PASSWORD"):
            accounts[role] = (os.environ.get(variable, default).strip() or default, password)
    return accounts


def experiment_id(store_uri: str, name: str) -> str | None:
    """The active experiment called NAME in the tracking store (None before the first run)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(store_uri)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                sqlalchemy.text(
                    "SELECT experiment_id FROM experiments WHERE name = :name AND lifecycle_stage = 'active'"
                ),
                {"name": name},
            ).scalar()
    except sqlalchemy.exc.DBAPIError:  # no tables yet: the server creates them
        return None
    finally:
        engine.dispose()
    return None if found is None else str(found)


def ensure_accounts(auth_uri: str, store_uri: str, accounts: dict[str, tuple[str, str]], model_name: str) -> None:
    """Create each role's user (or set its password), and let training and promoter edit the model.
    The training account creates the model and its experiment on a new server (their creator may
    edit them); on a server where another account created them it is granted EDIT here."""
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(auth_uri)
    experiment = experiment_id(store_uri, model_name)
    for role, (user, password) in accounts.items():
        if store.has_user(user):
            store.update_user(user, password=password)
        else:
            store.create_user(user, password)
        # EDIT registers versions; deleting them (or the model) takes MANAGE in MLflow.
        grants = {"TRAINING": [("registered_model", model_name, "EDIT"), ("experiment", experiment, "EDIT")]}
        grants["PROMOTER"] = [("registered_model", model_name, "MANAGE")]
        for kind, name, permission in grants.get(role, []):
            if name is None:
                continue
            try:
                getattr(store, f"create_{kind}_permission")(name, user, permission)
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                getattr(store, f"update_{kind}_permission")(name, user, permission)
        print(f"mlflow-serve: account {user} ({role.lower()}) ready", flush=True)


def auth_cache_ttl_s() -> int:
    value = os.environ.get("MLFLOW_AUTH_CACHE_TTL_S", "60").strip()
    if not value.isdigit():
        fail(f"MLFLOW_AUTH_CACHE_TTL_S must be a whole number of seconds (0 turns the cache off), not {value!r}")
    return int(value)


def main() -> None:
    env = dict(os.environ)
    store = os.environ.get("MLFLOW_BACKEND_STORE_URI", "")
    database = os.environ.get("POSTGRES_DB", "mlflow")
    if not store:
        store = postgres_uri(database)
        wait_for_postgres(store)
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--artifacts-destination", os.environ.get("MLFLOW_ARTIFACTS_DESTINATION", "/mlflow/artifacts"),
        "--serve-artifacts",
        "--host", "0.0.0.0",  # noqa: S104  # nosec B104: inside a container; Compose publishes on 127.0.0.1
        "--port", os.environ.get("MLFLOW_PORT", "5000"),
        "--workers", os.environ.get("MLFLOW_WORKERS", "1"),
        "--allowed-hosts", os.environ.get("MLFLOW_ALLOWED_HOSTS", DEFAULT_ALLOWED_HOSTS),
    ]  # fmt: skip
    env["MLFLOW_BACKEND_STORE_URI"] = store  # not an argument: `ps` would show the password
    admin_password = secret("MLFLOW_ADMIN_PASSWORD")
    if admin_password:
        if not store.startswith("postgresql"):
            fail("basic auth keeps its users in PostgreSQL: unset MLFLOW_BACKEND_STORE_URI (or the password file)")
        ensure_database(store, f"{database}_auth")
        admin = os.environ.get("MLFLOW_ADMIN_USERNAME", "admin")
        auth_store = postgres_uri(f"{database}_auth")
        config = write_auth_config(auth_store, admin, auth_cache_ttl_s())
        accounts = role_accounts()
        ensure_accounts(auth_store, store, accounts, os.environ.get("MODEL_NAME", "mnist-cnn"))
        for variable, role in (("MLFLOW_PROMOTERS", "PROMOTER"), ("MLFLOW_READ_ONLY_USERS", "SYNC")):
            listed = [name for name in env.get(variable, "").split(",") if name.strip()]
            env[variable] = ",".join([accounts[role][0], *listed] if role in accounts else listed)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), env.get("PYTHONPATH")]))
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(config)
        env["MLFLOW_AUTH_ADMIN_PASSWORD"] = admin_password
        # The auth app's CSRF protection needs one key shared by the workers: one per start.
        env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))
        command += ["--app-name", "basic-auth"]
        print("mlflow-serve: basic auth on (every request needs a user)", flush=True)
    else:
        print("mlflow-serve: no MLFLOW_ADMIN_PASSWORD_FILE: no authentication (dev only)", flush=True)
    env.pop("POSTGRES_PASSWORD", None)
    os.execvpe(command[0], command, env)  # noqa: S606  # nosec B606: a fixed program, no shell


if __name__ == "__main__":
    main()
