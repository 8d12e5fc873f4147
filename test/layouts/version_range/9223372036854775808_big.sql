CREATE TABLE big (id int);
