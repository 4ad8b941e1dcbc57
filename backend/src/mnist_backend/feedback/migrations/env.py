"""Alembic's entry point: runs on the connection the store hands over (``config.attributes``)."""

from __future__ import annotations

from alembic import context

from mnist_backend.feedback.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
