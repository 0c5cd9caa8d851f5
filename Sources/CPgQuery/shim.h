/* CPgQuery: libpg_query (PostgreSQL's own parser as a library) for the query classifier; libpg-query-dev has no
   pkg-config file, so the modulemap links "pg_query" directly. Only ProxyIO/PgQueryParser.swift uses it. */
#ifndef SWITCHYARD_CPGQUERY_SHIM_H
#define SWITCHYARD_CPGQUERY_SHIM_H
#include <sys/types.h>
#include <pg_query.h>
#endif
