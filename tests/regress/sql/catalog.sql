-- month_lock: what CREATE EXTENSION makes: functions with their signatures, volatility,
-- parallel safety and strictness, a comment on every object, and the extension's members.

SELECT p.oid::regprocedure AS function, pg_get_function_result(p.oid) AS returns,
       p.provolatile AS volatile, p.proparallel AS parallel, p.proisstrict AS strict,
       p.prosecdef AS security_definer,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS has_comment
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'month_lock'
 ORDER BY 1::text;

SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS member
  FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
 WHERE e.extname = 'month_lock' AND d.deptype = 'e'
   AND d.classid <> 'pg_type'::regclass  -- PostgreSQL 18 also lists the view's row types
 ORDER BY 1;

SELECT obj_description('month_locks'::regclass, 'pg_class') IS NOT NULL AS view_has_comment;
SELECT extrelocatable, extversion = (SELECT default_version FROM pg_available_extensions
                                      WHERE name = 'month_lock') AS default_version_installed
  FROM pg_extension WHERE extname = 'month_lock';
