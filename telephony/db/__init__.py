"""PostgreSQL access: connection, migrations, and one module of SQL per table family."""
