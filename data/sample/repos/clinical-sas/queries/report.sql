-- Treatment-emergent adverse events per system organ class and arm.
SELECT a.aesoc,
       s.arm,
       COUNT(DISTINCT a.usubjid) AS subjects,
       COUNT(*)                  AS events
FROM adae a
JOIN adsl s ON s.usubjid = a.usubjid
WHERE a.trtemfl = 'Y'
GROUP BY a.aesoc, s.arm
ORDER BY subjects DESC;
