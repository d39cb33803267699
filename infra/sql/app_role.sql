-- The least-privilege role the Function App signs in as: it reads and writes rows of
-- DTBase's tables and can do nothing else (no DDL, no other database, no roles). The admin
-- runs this after every migration (the pipeline does), so tables a migration adds are
-- granted too; running it twice changes nothing.
--
--   psql "$ADMIN_URL" -v app_role=dtbase_app -v app_password="$PASSWORD" -f infra/sql/app_role.sql
\set ON_ERROR_STOP on

SELECT format('CREATE ROLE %I LOGIN', :'app_role')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_role') \gexec

ALTER ROLE :"app_role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    NOBYPASSRLS INHERIT CONNECTION LIMIT -1 PASSWORD :'app_password';

-- Nobody but the admin creates objects in the schema (PostgreSQL 15+ already says so).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'app_role') \gexec
GRANT USAGE ON SCHEMA public TO :"app_role";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app_role";
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO :"app_role";
-- The migration history belongs to migrations alone.
REVOKE INSERT, UPDATE, DELETE ON TABLE alembic_version FROM :"app_role";
