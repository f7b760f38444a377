#!/usr/bin/env python3
"""Produces the TPC-H known answers in this directory with DuckDB.

Usage: make_answers.py TBL_DIR QUERY_DIR OUT_DIR

TBL_DIR holds the eight tables as dbgen-style `.tbl` files (`|`-separated,
with a trailing `|`), written by the `tpchgen` crate (see README.md).
QUERY_DIR holds Tusk's query texts (`sql/src/tpch/queries/qNN.sql`); each is
run as written, statement by statement, and the result set of the statement
that returns rows is written to OUT_DIR/qNN.csv (header line, `|`-separated).
"""
import os
import sys

import duckdb

TABLES = {
    "nation": "n_nationkey BIGINT, n_name VARCHAR, n_regionkey BIGINT, n_comment VARCHAR",
    "region": "r_regionkey BIGINT, r_name VARCHAR, r_comment VARCHAR",
    "part": "p_partkey BIGINT, p_name VARCHAR, p_mfgr VARCHAR, p_brand VARCHAR, p_type VARCHAR, "
    "p_size INTEGER, p_container VARCHAR, p_retailprice DECIMAL(15,2), p_comment VARCHAR",
    "supplier": "s_suppkey BIGINT, s_name VARCHAR, s_address VARCHAR, s_nationkey BIGINT, "
    "s_phone VARCHAR, s_acctbal DECIMAL(15,2), s_comment VARCHAR",
    "partsupp": "ps_partkey BIGINT, ps_suppkey BIGINT, ps_availqty INTEGER, "
    "ps_supplycost DECIMAL(15,2), ps_comment VARCHAR",
    "customer": "c_custkey BIGINT, c_name VARCHAR, c_address VARCHAR, c_nationkey BIGINT, "
    "c_phone VARCHAR, c_acctbal DECIMAL(15,2), c_mktsegment VARCHAR, c_comment VARCHAR",
    "orders": "o_orderkey BIGINT, o_custkey BIGINT, o_orderstatus VARCHAR, "
    "o_totalprice DECIMAL(15,2), o_orderdate DATE, o_orderpriority VARCHAR, o_clerk VARCHAR, "
    "o_shippriority INTEGER, o_comment VARCHAR",
    "lineitem": "l_orderkey BIGINT, l_partkey BIGINT, l_suppkey BIGINT, l_linenumber INTEGER, "
    "l_quantity DECIMAL(15,2), l_extendedprice DECIMAL(15,2), l_discount DECIMAL(15,2), "
    "l_tax DECIMAL(15,2), l_returnflag VARCHAR, l_linestatus VARCHAR, l_shipdate DATE, "
    "l_commitdate DATE, l_receiptdate DATE, l_shipinstruct VARCHAR, l_shipmode VARCHAR, "
    "l_comment VARCHAR",
}


def main():
    tbl_dir, query_dir, out_dir = sys.argv[1:4]
    os.makedirs(out_dir, exist_ok=True)
    con = duckdb.connect()
    for name, columns in TABLES.items():
        con.execute(f"CREATE TABLE {name} ({columns})")
        # Strip dbgen's trailing '|' so every line has exactly the columns.
        src = os.path.join(tbl_dir, f"{name}.tbl")
        tmp = os.path.join(out_dir, f".{name}.psv")
        with open(src) as f, open(tmp, "w") as g:
            for line in f:
                g.write(line.rstrip("\n").rstrip("|") + "\n")
        con.execute(f"COPY {name} FROM '{tmp}' (DELIMITER '|', HEADER false, QUOTE '\"')")
        os.remove(tmp)
        print(name, con.execute(f"SELECT count(*) FROM {name}").fetchone()[0], file=sys.stderr)
    for n in range(1, 23):
        text = open(os.path.join(query_dir, f"q{n:02}.sql")).read()
        statements = [s.strip() for s in text.split(";") if s.strip()]
        written = False
        for st in statements:
            body = "\n".join(l for l in st.splitlines() if not l.lstrip().startswith("--")).strip()
            if body.lower().startswith("select"):
                out = os.path.join(out_dir, f"q{n:02}.csv")
                con.execute(f"COPY ({body}) TO '{out}' (HEADER, DELIMITER '|', QUOTE '')")
                written = True
            else:
                con.execute(body)
        assert written, f"q{n}: no query"
        print(f"q{n:02}", file=sys.stderr)


if __name__ == "__main__":
    main()
