ALTER TABLE objects ADD COLUMN path_tokens text[];
