ALTER TABLE objects DROP COLUMN path_tokens;
