// What the classifier knows about functions: the built-in functions that write or need the primary (never
// overridable), and a catalog of volatilities (a built-in table here; a pg_proc loader can supply another).

public enum FunctionVolatility: String, Sendable {
    case immutable
    case stable
    case volatile
}

/// Volatility by function name. Names are as Postgres stores them: unquoted names are lowercase, quoted ones
/// keep their case. The classifier asks for "schema.name" first when the call is qualified, then "name" for
/// unqualified calls and pg_catalog ones. nil means unknown (the classifier then routes to the primary).
public protocol FunctionCatalog: Sendable {
    func volatility(of name: String) -> FunctionVolatility?
}

/// Built-in functions that write, take locks, assign transaction IDs or only work on a primary. Calls to them
/// anywhere in a statement route it to the primary, whatever the catalog or a hint says.
public enum WriteFunctions {
    public static let names: Set<String> = [
        "nextval", "setval", "currval", "lastval",
        "pg_advisory_lock", "pg_advisory_lock_shared", "pg_advisory_xact_lock", "pg_advisory_xact_lock_shared",
        "pg_try_advisory_lock", "pg_try_advisory_lock_shared", "pg_try_advisory_xact_lock",
        "pg_try_advisory_xact_lock_shared", "pg_advisory_unlock", "pg_advisory_unlock_shared", "pg_advisory_unlock_all",
        "pg_notify", "set_config",
        "txid_current", "txid_current_if_assigned", "pg_current_xact_id", "pg_current_xact_id_if_assigned",
        "pg_current_wal_lsn", "pg_current_wal_insert_lsn", "pg_current_wal_flush_lsn", "pg_switch_wal",
        "pg_create_restore_point", "pg_logical_emit_message",
        "pg_create_physical_replication_slot", "pg_create_logical_replication_slot", "pg_drop_replication_slot",
        "pg_copy_physical_replication_slot", "pg_copy_logical_replication_slot",
        "lo_create", "lo_creat", "lo_import", "lo_unlink", "lo_from_bytea", "lo_put", "lo_truncate", "lo_truncate64",
        "lowrite",
    ]

    /// True for a listed name, and for any pg_*advisory* lock function a later Postgres may add.
    public static func contains(_ name: String) -> Bool {
        names.contains(name) || (name.hasPrefix("pg_") && name.contains("advisory"))
    }
}

/// Common built-ins, for tests and as a fallback when no pg_proc catalog is loaded: the write functions as
/// volatile, the volatile read-only ones Postgres marks volatile (random, clock_timestamp...), and stable /
/// immutable functions clients use every day. `extra` adds or overrides entries (user functions).
public struct BuiltinFunctionCatalog: FunctionCatalog {
    public let table: [String: FunctionVolatility]

    public init(extra: [String: FunctionVolatility] = [:]) {
        var table: [String: FunctionVolatility] = [:]
        for name in WriteFunctions.names { table[name] = .volatile }
        for name in Self.volatileReads { table[name] = .volatile }
        for name in Self.stable { table[name] = .stable }
        for name in Self.immutable { table[name] = .immutable }
        table.merge(extra) { _, new in new }
        self.table = table
    }

    public func volatility(of name: String) -> FunctionVolatility? { table[name] }

    /// Volatile in pg_proc although they do not write: random values and wall-clock time.
    static let volatileReads = [
        "random", "setseed", "gen_random_uuid", "clock_timestamp", "timeofday", "pg_sleep", "pg_sleep_for",
        "pg_sleep_until",
    ]

    static let stable = [
        // time of the transaction / statement
        "now", "statement_timestamp", "transaction_timestamp", "localtime", "localtimestamp", "age",
        "to_char", "to_date", "to_timestamp", "date_trunc", "date_part", "extract", "timezone",
        // session and server information
        "current_setting", "current_database", "current_schema", "current_schemas", "current_user", "session_user",
        "version", "pg_backend_pid", "pg_postmaster_start_time", "pg_conf_load_time", "inet_server_addr",
        "inet_server_port", "inet_client_addr", "inet_client_port", "pg_my_temp_schema",
        "pg_typeof", "format_type", "pg_get_userbyid", "pg_get_expr", "pg_get_indexdef", "pg_get_constraintdef",
        "pg_get_viewdef", "pg_get_functiondef", "pg_get_keywords", "obj_description", "col_description",
        "shobj_description", "has_table_privilege", "has_schema_privilege", "has_database_privilege",
        "has_column_privilege", "has_function_privilege", "pg_has_role", "pg_table_is_visible",
        "pg_relation_size", "pg_table_size", "pg_indexes_size", "pg_total_relation_size", "pg_database_size",
        "pg_size_pretty", "pg_current_snapshot", "txid_current_snapshot", "pg_encoding_to_char",
        // text functions that depend on settings
        "concat", "concat_ws", "format", "to_json", "to_jsonb", "row_to_json", "array_to_json", "json_agg",
        "jsonb_agg", "json_object_agg", "jsonb_object_agg", "json_build_object", "json_build_array",
        "jsonb_build_object", "jsonb_build_array", "string_agg", "array_agg",
        // function-style casts: date(x), int4(x)...
        "date", "time", "timetz", "timestamp", "timestamptz", "interval", "text", "varchar", "bpchar", "int2",
        "int4", "int8", "float4", "float8", "bool", "json", "jsonb", "uuid", "inet", "cidr", "bytea", "oid",
        "regclass",
    ]

    static let immutable = [
        // aggregates and window functions
        "count", "sum", "avg", "min", "max", "bool_and", "bool_or", "every", "stddev", "stddev_pop",
        "stddev_samp", "variance", "var_pop", "var_samp", "percentile_cont", "percentile_disc", "mode",
        "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead", "first_value",
        "last_value", "nth_value",
        // numbers
        "abs", "round", "trunc", "floor", "ceil", "ceiling", "sign", "sqrt", "cbrt", "power", "pow", "exp", "ln",
        "log", "log10", "mod", "div", "greatest", "least", "width_bucket", "numeric", "pi",
        // text
        "lower", "upper", "initcap", "length", "char_length", "character_length", "octet_length", "bit_length",
        "substr", "substring", "position", "strpos", "overlay", "trim", "btrim", "ltrim", "rtrim", "replace",
        "split_part", "left", "right", "lpad", "rpad", "repeat", "reverse", "chr", "ascii", "md5", "sha256",
        "encode", "decode", "quote_ident", "quote_literal", "quote_nullable", "regexp_replace", "regexp_match",
        "regexp_matches", "regexp_split_to_array", "regexp_split_to_table", "starts_with", "translate",
        "string_to_array", "array_to_string", "to_hex", "normalize", "is_normalized",
        // arrays, ranges, json
        "array_length", "array_upper", "array_lower", "array_position", "array_positions", "array_append",
        "array_prepend", "array_cat", "array_remove", "array_replace", "cardinality", "unnest", "generate_series",
        "generate_subscripts", "lower_inf", "upper_inf", "isempty", "jsonb_typeof", "json_typeof",
        "jsonb_array_length", "json_array_length", "jsonb_array_elements", "jsonb_array_elements_text",
        "json_array_elements", "json_array_elements_text", "jsonb_each", "jsonb_each_text", "json_each",
        "json_each_text", "jsonb_object_keys", "json_object_keys", "jsonb_extract_path", "jsonb_extract_path_text",
        "json_extract_path", "json_extract_path_text", "jsonb_set", "jsonb_insert", "jsonb_strip_nulls",
        "jsonb_pretty", "jsonb_path_query", "jsonb_path_exists",
        // dates (immutable forms)
        "make_date", "make_time", "make_interval", "justify_days", "justify_hours", "justify_interval", "isfinite",
    ]
}
