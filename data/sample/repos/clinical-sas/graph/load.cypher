// Load subjects and adverse events into the safety graph.
LOAD CSV WITH HEADERS FROM 'file:///adsl.csv' AS row
MERGE (s:Subject {usubjid: row.USUBJID})
SET s.age = toInteger(row.AGE), s.arm = row.ARM;

LOAD CSV WITH HEADERS FROM 'file:///adae.csv' AS row
MATCH (s:Subject {usubjid: row.USUBJID})
MERGE (e:AdverseEvent {term: row.AEDECOD})
MERGE (s)-[r:EXPERIENCED {start: date(row.ASTDT)}]->(e)
SET r.serious = row.AESER = 'Y';

// Subjects who had more than two serious events, by arm.
MATCH (s:Subject)-[r:EXPERIENCED {serious: true}]->(:AdverseEvent)
WITH s, count(r) AS serious_events
WHERE serious_events > 2
RETURN s.arm AS arm, count(s) AS subjects ORDER BY subjects DESC;
