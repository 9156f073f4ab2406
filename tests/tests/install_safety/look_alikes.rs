//! The look-alike operators and functions the install-safety test plants in the target schema
//! before month_lock is installed there (each records its call and tries to make its owner a
//! superuser, then returns the right answer).

/// Every look-alike mallory plants: (operator or function signature, SQL that creates it).
/// The operator traps are implemented by functions `s.mal_*` that call the hook first.
pub(super) fn traps() -> Vec<String> {
    let mut sql = Vec::new();
    // Binary operators: name, left, right, result, body (pg_catalog-qualified real operation).
    let ops: &[(&str, &str, &str, &str, &str)] = &[
        (
            "%",
            "bigint",
            "integer",
            "bigint",
            "l OPERATOR(pg_catalog.%) r::bigint",
        ),
        (
            "/",
            "bigint",
            "integer",
            "bigint",
            "l OPERATOR(pg_catalog./) r",
        ),
        (
            "*",
            "bigint",
            "integer",
            "bigint",
            "l OPERATOR(pg_catalog.*) r",
        ),
        (
            "+",
            "bigint",
            "integer",
            "bigint",
            "l OPERATOR(pg_catalog.+) r",
        ),
        (
            "-",
            "bigint",
            "integer",
            "bigint",
            "l OPERATOR(pg_catalog.-) r",
        ),
        ("=", "text", "text", "boolean", "l OPERATOR(pg_catalog.=) r"),
        (
            "=",
            "integer",
            "integer",
            "boolean",
            "l OPERATOR(pg_catalog.=) r",
        ),
        (
            "=",
            "bigint",
            "integer",
            "boolean",
            "l OPERATOR(pg_catalog.=) r",
        ),
        (
            "=",
            "bigint",
            "bigint",
            "boolean",
            "l OPERATOR(pg_catalog.=) r",
        ),
        ("=", "oid", "oid", "boolean", "l OPERATOR(pg_catalog.=) r"),
        ("=", "name", "name", "boolean", "l OPERATOR(pg_catalog.=) r"),
        (
            "=",
            "oid",
            "bigint",
            "boolean",
            "l::bigint OPERATOR(pg_catalog.=) r",
        ),
        (
            "=",
            "integer",
            "bigint",
            "boolean",
            "l OPERATOR(pg_catalog.=) r",
        ),
        (
            "=",
            "smallint",
            "integer",
            "boolean",
            "l OPERATOR(pg_catalog.=) r",
        ),
        (
            "<>",
            "text",
            "text",
            "boolean",
            "l OPERATOR(pg_catalog.<>) r",
        ),
        (
            ">=",
            "bigint",
            "integer",
            "boolean",
            "l OPERATOR(pg_catalog.>=) r",
        ),
        (
            "<=",
            "bigint",
            "integer",
            "boolean",
            "l OPERATOR(pg_catalog.<=) r",
        ),
        (
            ">",
            "bigint",
            "integer",
            "boolean",
            "l OPERATOR(pg_catalog.>) r",
        ),
        (
            "<",
            "bigint",
            "integer",
            "boolean",
            "l OPERATOR(pg_catalog.<) r",
        ),
        (
            ">=",
            "integer",
            "integer",
            "boolean",
            "l OPERATOR(pg_catalog.>=) r",
        ),
        (
            "<=",
            "integer",
            "integer",
            "boolean",
            "l OPERATOR(pg_catalog.<=) r",
        ),
        ("||", "text", "text", "text", "l OPERATOR(pg_catalog.||) r"),
    ];
    for (i, (op, l, r, res, body)) in ops.iter().enumerate() {
        let label = format!("{l} {op} {r}").replace('\'', "''");
        sql.push(format!(
            "CREATE FUNCTION s.mal_op{i}(l {l}, r {r}) RETURNS {res} LANGUAGE plpgsql \
               SET search_path = pg_catalog, pg_temp AS $f$ \
             BEGIN PERFORM s.mal_hook('operator {label}'); RETURN {body}; END $f$"
        ));
        sql.push(format!(
            "CREATE OPERATOR s.{op} (LEFTARG = {l}, RIGHTARG = {r}, FUNCTION = s.mal_op{i})"
        ));
    }
    // Functions with pg_catalog's names: signature, result, body.
    let funcs: &[(&str, &str, &str)] = &[
        (
            "make_date(integer, integer, integer)",
            "date",
            "pg_catalog.make_date($1, $2, $3)",
        ),
        (
            "make_date(bigint, bigint, integer)",
            "date",
            "pg_catalog.make_date($1::int, $2::int, $3)",
        ),
        (
            "current_database()",
            "name",
            "pg_catalog.current_database()",
        ),
        (
            "current_setting(text)",
            "text",
            "pg_catalog.current_setting($1)",
        ),
        (
            "current_setting(text, boolean)",
            "text",
            "pg_catalog.current_setting($1, $2)",
        ),
        ("pg_backend_pid()", "integer", "pg_catalog.pg_backend_pid()"),
        (
            "lpad(text, integer, text)",
            "text",
            "pg_catalog.lpad($1, $2, $3)",
        ),
        ("format(text, text)", "text", "pg_catalog.format($1, $2)"),
        (
            "to_char(integer, text)",
            "text",
            "pg_catalog.to_char($1, $2)",
        ),
        ("int4(bigint)", "integer", "$1::pg_catalog.int4"),
        ("int8(integer)", "bigint", "$1::pg_catalog.int8"),
        (
            "has_function_privilege(text, text)",
            "boolean",
            "pg_catalog.has_function_privilege($1, $2)",
        ),
        (
            "pg_has_role(oid, text)",
            "boolean",
            "pg_catalog.pg_has_role($1, $2)",
        ),
        (
            "pg_has_role(name, text)",
            "boolean",
            "pg_catalog.pg_has_role($1, $2)",
        ),
        (
            "pg_has_role(oid, oid, text)",
            "boolean",
            "pg_catalog.pg_has_role($1, $2, $3)",
        ),
        ("is_member_of_role(oid, oid)", "boolean", "true"),
    ];
    for (sig, res, body) in funcs {
        let label = sig.replace('\'', "''");
        sql.push(format!(
            "CREATE FUNCTION s.{sig} RETURNS {res} LANGUAGE plpgsql \
               SET search_path = pg_catalog, pg_temp AS $f$ \
             BEGIN PERFORM s.mal_hook('function {label}'); RETURN {body}; END $f$"
        ));
    }
    sql
}
