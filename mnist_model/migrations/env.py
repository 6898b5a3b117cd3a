"""Alembic's entry: the store runs migrations itself (database.upgrade), on a connection it already holds."""
from alembic import context

from mnist_model.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # the alembic command line (adding a revision): a database named by -x url=...
    from sqlalchemy import create_engine
    connection = create_engine(context.get_x_argument(as_dictionary=True)["url"]).connect()
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
