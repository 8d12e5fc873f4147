/* tenant_mgr--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION tenant_mgr UPDATE TO '1.1'" to load this file. \quit

/*
 * The job and intent queue looks intents up in two ways: by job (an
 * executor finds the intent of a queued create it retries, the launcher
 * removes a job's intent when the job ends) and by object name (a new
 * database tenant is refused while an intent holds its database name).
 * Without these indexes each lookup reads the whole intent table.
 */
CREATE INDEX intent_job_id_idx ON tenant_mgr.intent (job_id)
    WHERE job_id IS NOT NULL;
CREATE INDEX intent_object_name_idx ON tenant_mgr.intent (object_name);
