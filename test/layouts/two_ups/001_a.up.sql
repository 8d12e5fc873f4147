CREATE TABLE a (id int, x int);
