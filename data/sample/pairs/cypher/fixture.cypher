// Fixture graph for the Cypher pair set: a small movie graph, hand-written for codecurate.
// Format: statements separated by ';' and comment lines starting with '//'. The node and
// relationship tables come first (embedded engines such as Kuzu/ladybug need them; skip the
// CREATE ... TABLE statements on Neo4j), then the data as plain openCypher CREATE and
// MATCH ... CREATE statements.
CREATE NODE TABLE Person(name STRING, born INT64, PRIMARY KEY (name));
CREATE NODE TABLE Movie(title STRING, released INT64, genre STRING, rating DOUBLE, PRIMARY KEY (title));
CREATE REL TABLE ACTED_IN(FROM Person TO Movie, role STRING);
CREATE REL TABLE DIRECTED(FROM Person TO Movie);
CREATE (:Movie {title: 'The Matrix', released: 1999, genre: 'Science Fiction', rating: 8.7});
CREATE (:Movie {title: 'The Matrix Reloaded', released: 2003, genre: 'Science Fiction', rating: 7.2});
CREATE (:Movie {title: 'Cloud Atlas', released: 2012, genre: 'Drama', rating: 7.4});
CREATE (:Movie {title: 'Top Gun', released: 1986, genre: 'Action', rating: 6.9});
CREATE (:Movie {title: 'A Few Good Men', released: 1992, genre: 'Drama', rating: 7.7});
CREATE (:Movie {title: 'Jerry Maguire', released: 1996, genre: 'Romance', rating: 7.3});
CREATE (:Movie {title: 'Apollo 13', released: 1995, genre: 'Drama', rating: 7.7});
CREATE (:Movie {title: 'Cast Away', released: 2000, genre: 'Drama', rating: 7.8});
CREATE (:Movie {title: 'The Green Mile', released: 1999, genre: 'Drama', rating: 8.6});
CREATE (:Movie {title: 'Sleepless in Seattle', released: 1993, genre: 'Romance', rating: 6.8});
CREATE (:Person {name: 'Keanu Reeves', born: 1964});
CREATE (:Person {name: 'Carrie-Anne Moss', born: 1967});
CREATE (:Person {name: 'Lana Wachowski', born: 1965});
CREATE (:Person {name: 'Tom Hanks', born: 1956});
CREATE (:Person {name: 'Tom Cruise', born: 1962});
CREATE (:Person {name: 'Meg Ryan', born: 1961});
CREATE (:Person {name: 'Rob Reiner', born: 1947});
CREATE (:Person {name: 'Ron Howard', born: 1954});
CREATE (:Person {name: 'Robert Zemeckis', born: 1951});
CREATE (:Person {name: 'Frank Darabont', born: 1959});
CREATE (:Person {name: 'Tony Scott', born: 1944});
CREATE (:Person {name: 'Cameron Crowe', born: 1957});
CREATE (:Person {name: 'Nora Ephron', born: 1941});
MATCH (p:Person {name: 'Keanu Reeves'}), (m:Movie {title: 'The Matrix'}) CREATE (p)-[:ACTED_IN {role: 'Neo'}]->(m);
MATCH (p:Person {name: 'Keanu Reeves'}), (m:Movie {title: 'The Matrix Reloaded'}) CREATE (p)-[:ACTED_IN {role: 'Neo'}]->(m);
MATCH (p:Person {name: 'Carrie-Anne Moss'}), (m:Movie {title: 'The Matrix'}) CREATE (p)-[:ACTED_IN {role: 'Trinity'}]->(m);
MATCH (p:Person {name: 'Carrie-Anne Moss'}), (m:Movie {title: 'The Matrix Reloaded'}) CREATE (p)-[:ACTED_IN {role: 'Trinity'}]->(m);
MATCH (p:Person {name: 'Tom Hanks'}), (m:Movie {title: 'Cloud Atlas'}) CREATE (p)-[:ACTED_IN {role: 'Zachry'}]->(m);
MATCH (p:Person {name: 'Tom Hanks'}), (m:Movie {title: 'Apollo 13'}) CREATE (p)-[:ACTED_IN {role: 'Jim Lovell'}]->(m);
MATCH (p:Person {name: 'Tom Hanks'}), (m:Movie {title: 'Cast Away'}) CREATE (p)-[:ACTED_IN {role: 'Chuck Noland'}]->(m);
MATCH (p:Person {name: 'Tom Hanks'}), (m:Movie {title: 'The Green Mile'}) CREATE (p)-[:ACTED_IN {role: 'Paul Edgecomb'}]->(m);
MATCH (p:Person {name: 'Tom Hanks'}), (m:Movie {title: 'Sleepless in Seattle'}) CREATE (p)-[:ACTED_IN {role: 'Sam Baldwin'}]->(m);
MATCH (p:Person {name: 'Tom Cruise'}), (m:Movie {title: 'Top Gun'}) CREATE (p)-[:ACTED_IN {role: 'Maverick'}]->(m);
MATCH (p:Person {name: 'Tom Cruise'}), (m:Movie {title: 'A Few Good Men'}) CREATE (p)-[:ACTED_IN {role: 'Lt. Daniel Kaffee'}]->(m);
MATCH (p:Person {name: 'Tom Cruise'}), (m:Movie {title: 'Jerry Maguire'}) CREATE (p)-[:ACTED_IN {role: 'Jerry Maguire'}]->(m);
MATCH (p:Person {name: 'Meg Ryan'}), (m:Movie {title: 'Top Gun'}) CREATE (p)-[:ACTED_IN {role: 'Carole'}]->(m);
MATCH (p:Person {name: 'Meg Ryan'}), (m:Movie {title: 'Sleepless in Seattle'}) CREATE (p)-[:ACTED_IN {role: 'Annie Reed'}]->(m);
MATCH (p:Person {name: 'Lana Wachowski'}), (m:Movie {title: 'The Matrix'}) CREATE (p)-[:DIRECTED]->(m);
MATCH (p:Person {name: 'Lana Wachowski'}), (m:Movie {title: 'The Matrix Reloaded'}) CREATE (p)-[:DIRECTED]->(m);
MATCH (p:Person {name: 'Lana Wachowski'}), (m:Movie {title: 'Cloud Atlas'}) CREATE (p)-[:DIRECTED]->(m);
MATCH (p:Person {name: 'Tony Scott'}), (m:Movie {title: 'Top Gun'}) CREATE (p)-[:DIRECTED]->(m);
MATCH (p:Person {name: 'Rob Reiner'}), (m:Movie {title: 'A Few Good Men'}) CREATE (p)-[:DIRECTED]->(m);
MATCH (p:Person {name: 'Cameron Crowe'}), (m:Movie {title: 'Jerry Maguire'}) CREATE (p)-[:DIRECTED]->(m);
MATCH (p:Person {name: 'Ron Howard'}), (m:Movie {title: 'Apollo 13'}) CREATE (p)-[:DIRECTED]->(m);
MATCH (p:Person {name: 'Robert Zemeckis'}), (m:Movie {title: 'Cast Away'}) CREATE (p)-[:DIRECTED]->(m);
MATCH (p:Person {name: 'Frank Darabont'}), (m:Movie {title: 'The Green Mile'}) CREATE (p)-[:DIRECTED]->(m);
MATCH (p:Person {name: 'Nora Ephron'}), (m:Movie {title: 'Sleepless in Seattle'}) CREATE (p)-[:DIRECTED]->(m);
