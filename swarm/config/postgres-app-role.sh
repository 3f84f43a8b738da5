#!/bin/sh
# Mounted (Swarm config postgres_app_role) into the postgres image's /docker-entrypoint-initdb.d:
# runs once, when PostgreSQL initialises an empty data directory, as POSTGRES_USER (the owner
# role Gatehouse migrates as). Creates the serving role Gatehouse's DATABASE_URL names, with the
# password of the secret gatehouse_app_db_password. Its privileges are granted by Gatehouse's
# migrator after each migrate (INSERT/SELECT only on audit_records). README "Database roles".
set -e
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v app_password="$(cat /run/secrets/gatehouse_app_db_password)" <<'SQL'
CREATE ROLE gatehouse_app LOGIN PASSWORD :'app_password';
SQL
