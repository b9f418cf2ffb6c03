"""Backups and restores of a site: the database (pg_dump) and its stored files."""
