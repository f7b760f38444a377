//! TPC-H on Tusk: the eight tables generated with `tpchgen-arrow` and
//! loaded through a [`Session`](crate::Session), the 22 queries, known
//! answers at scale factor 0.01, a result comparison, and a plain
//! single-process DataFusion baseline over the same Parquet files.
//!
//! Derived from the TPC-H specification; results are not comparable to
//! published TPC-H results.
//!
//! # Tables
//!
//! [`create_statements`] declares each column with the SQL type whose Arrow
//! type (DataFusion's own SQL type mapping) is exactly the one
//! `tpchgen-arrow` produces: keys `BIGINT` (Int64), money `DECIMAL(15,2)`
//! (Decimal128(15, 2)), dates `DATE` (Date32), text `STRING` (Utf8View),
//! other integers `INT` (Int32). So loading casts nothing and the Parquet
//! files hold what the generator made.
//!
//! # Queries
//!
//! [`QUERIES`] are the 22 queries of the TPC-H specification (3.0.1, §2.4)
//! with the specification's validation (qualification) substitution
//! parameters, one file per query under `src/tpch/queries/`. Q15 is three
//! statements (create a session view, query it, drop it): run the texts
//! with [`run_query`] or `Session::run_script`.
//!
//! # Answers
//!
//! [`answer`] gives the known results at scale factor 0.01
//! (`src/tpch/answers/sf0.01/qNN.csv`); `src/tpch/answers/README.md` says
//! how they were produced (DuckDB on the same generated data).
//! [`check`] compares a result with them.

mod baseline;
mod compare;
mod load;
mod queries;

pub use baseline::Baseline;
pub use compare::{ORDER_TIES, check, check_same, compare, compare_unordered, result_rows};
pub use load::{LoadReport, TableLoad, load, load_with_progress};
pub use queries::{ANSWER_SCALE, QUERIES, answer, query, run_query};

/// The eight tables, smallest first: the order they are created and loaded in.
pub const TABLES: [&str; 8] = ["region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"];

/// Columns of `table` as (name, SQL type), in `tpchgen-arrow`'s order.
pub fn columns(table: &str) -> Option<&'static [(&'static str, &'static str)]> {
    const KEY: &str = "BIGINT";
    const MONEY: &str = "DECIMAL(15,2)";
    const TEXT: &str = "STRING";
    const DATE: &str = "DATE";
    const INT: &str = "INT";
    Some(match table {
        "region" => &[("r_regionkey", KEY), ("r_name", TEXT), ("r_comment", TEXT)],
        "nation" => &[("n_nationkey", KEY), ("n_name", TEXT), ("n_regionkey", KEY), ("n_comment", TEXT)],
        "supplier" => &[
            ("s_suppkey", KEY),
            ("s_name", TEXT),
            ("s_address", TEXT),
            ("s_nationkey", KEY),
            ("s_phone", TEXT),
            ("s_acctbal", MONEY),
            ("s_comment", TEXT),
        ],
        "customer" => &[
            ("c_custkey", KEY),
            ("c_name", TEXT),
            ("c_address", TEXT),
            ("c_nationkey", KEY),
            ("c_phone", TEXT),
            ("c_acctbal", MONEY),
            ("c_mktsegment", TEXT),
            ("c_comment", TEXT),
        ],
        "part" => &[
            ("p_partkey", KEY),
            ("p_name", TEXT),
            ("p_mfgr", TEXT),
            ("p_brand", TEXT),
            ("p_type", TEXT),
            ("p_size", INT),
            ("p_container", TEXT),
            ("p_retailprice", MONEY),
            ("p_comment", TEXT),
        ],
        "partsupp" => &[
            ("ps_partkey", KEY),
            ("ps_suppkey", KEY),
            ("ps_availqty", INT),
            ("ps_supplycost", MONEY),
            ("ps_comment", TEXT),
        ],
        "orders" => &[
            ("o_orderkey", KEY),
            ("o_custkey", KEY),
            ("o_orderstatus", TEXT),
            ("o_totalprice", MONEY),
            ("o_orderdate", DATE),
            ("o_orderpriority", TEXT),
            ("o_clerk", TEXT),
            ("o_shippriority", INT),
            ("o_comment", TEXT),
        ],
        "lineitem" => &[
            ("l_orderkey", KEY),
            ("l_partkey", KEY),
            ("l_suppkey", KEY),
            ("l_linenumber", INT),
            ("l_quantity", MONEY),
            ("l_extendedprice", MONEY),
            ("l_discount", MONEY),
            ("l_tax", MONEY),
            ("l_returnflag", TEXT),
            ("l_linestatus", TEXT),
            ("l_shipdate", DATE),
            ("l_commitdate", DATE),
            ("l_receiptdate", DATE),
            ("l_shipinstruct", TEXT),
            ("l_shipmode", TEXT),
            ("l_comment", TEXT),
        ],
        _ => return None,
    })
}

/// `CREATE TABLE db.t (…) STORED AS PARQUET` for the eight tables (managed
/// tables of `db`), in [`TABLES`] order.
pub fn create_statements(db: &str) -> Vec<String> {
    TABLES
        .iter()
        .filter_map(|t| columns(t).map(|cols| (t, cols)))
        .map(|(t, cols)| {
            let cols: Vec<String> = cols.iter().map(|(n, ty)| format!("{n} {ty}")).collect();
            format!("CREATE TABLE {db}.{t} ({}) STORED AS PARQUET", cols.join(", "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::SchemaRef;

    fn generator_schema(table: &str) -> SchemaRef {
        match table {
            "region" => tpchgen_arrow::RegionArrow::schema_ref(),
            "nation" => tpchgen_arrow::NationArrow::schema_ref(),
            "supplier" => tpchgen_arrow::SupplierArrow::schema_ref(),
            "customer" => tpchgen_arrow::CustomerArrow::schema_ref(),
            "part" => tpchgen_arrow::PartArrow::schema_ref(),
            "partsupp" => tpchgen_arrow::PartSuppArrow::schema_ref(),
            "orders" => tpchgen_arrow::OrderArrow::schema_ref(),
            _ => tpchgen_arrow::LineItemArrow::schema_ref(),
        }
    }

    #[test]
    fn declared_types_are_the_generators_arrow_types() {
        for t in TABLES {
            let cols = columns(t).unwrap();
            let declared: Vec<tusk_proto::metastore::Column> = cols
                .iter()
                .map(|(n, ty)| tusk_proto::metastore::Column { name: n.to_string(), data_type: ty.to_string(), comment: String::new() })
                .collect();
            let fields = crate::types::arrow_fields(&declared).unwrap();
            let generated = generator_schema(t);
            assert_eq!(fields.len(), generated.fields().len(), "{t}");
            for (d, g) in fields.iter().zip(generated.fields()) {
                assert_eq!(d.name(), g.name(), "{t}");
                assert_eq!(d.data_type(), g.data_type(), "{t}.{}", d.name());
            }
        }
        assert!(columns("nope").is_none());
    }

    #[test]
    fn create_statements_name_the_database() {
        let s = create_statements("bench");
        assert_eq!(s.len(), 8);
        assert!(s[0].starts_with("CREATE TABLE bench.region (r_regionkey BIGINT, r_name STRING"), "{}", s[0]);
        assert!(s.iter().all(|s| s.ends_with("STORED AS PARQUET")));
    }
}
