-- The TechEmpower World table: 10 000 rows, ids 1..=10000, random numbers 1..=10000.
CREATE TABLE world (
    id integer NOT NULL PRIMARY KEY,
    randomnumber integer NOT NULL DEFAULT 0
);

INSERT INTO world (id, randomnumber)
SELECT g, 1 + floor(random() * 10000)::integer
FROM generate_series(1, 10000) AS g;
