CREATE TABLE objects (id uuid PRIMARY KEY, name text);
