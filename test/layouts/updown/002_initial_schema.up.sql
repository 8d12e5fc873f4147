CREATE TYPE river_job_state AS ENUM ('available', 'running');
CREATE TABLE river_job (id bigserial PRIMARY KEY, state river_job_state NOT NULL);
