DROP TABLE river_job;
DROP TYPE river_job_state;
