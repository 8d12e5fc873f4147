ALTER TABLE river_job ADD COLUMN tags text[] NOT NULL DEFAULT '{}';
