CREATE TABLE old (id int);
