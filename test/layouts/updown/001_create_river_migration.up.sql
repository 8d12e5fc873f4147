CREATE TABLE river_migration (id bigserial PRIMARY KEY, version bigint NOT NULL);
