//! Column types: the catalog keeps the SQL type as the user wrote it
//! (`INT`, `STRING`, `DECIMAL(15,2)`); Arrow types come from DataFusion's own
//! SQL type mapping, so a table's declared schema matches what DataFusion
//! plans for the same SQL types (`STRING` → `Utf8View`, ...).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef, Schema};
use datafusion::common::TableReference;
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::{AggregateUDF, HigherOrderUDF, ScalarUDF, TableSource, WindowUDF};
use datafusion::sql::planner::{ContextProvider, SqlToRel};
use datafusion::sql::sqlparser::ast::{ColumnDef, DataType as SqlType, Ident};
use datafusion::sql::sqlparser::dialect::HiveDialect;
use datafusion::sql::sqlparser::parser::Parser;
use tusk_proto::metastore as pb;

use crate::error::{Result, SqlError};

/// A planner context that knows nothing but the configuration: enough to
/// convert types.
struct TypesOnly(ConfigOptions);

impl ContextProvider for TypesOnly {
    fn get_table_source(&self, name: TableReference) -> datafusion::error::Result<Arc<dyn TableSource>> {
        datafusion::common::plan_err!("no table {name} here")
    }
    fn get_function_meta(&self, _: &str) -> Option<Arc<ScalarUDF>> {
        None
    }
    fn get_higher_order_meta(&self, _: &str) -> Option<Arc<HigherOrderUDF>> {
        None
    }
    fn get_aggregate_meta(&self, _: &str) -> Option<Arc<AggregateUDF>> {
        None
    }
    fn get_window_meta(&self, _: &str) -> Option<Arc<WindowUDF>> {
        None
    }
    fn get_variable_type(&self, _: &[String]) -> Option<DataType> {
        None
    }
    fn options(&self) -> &ConfigOptions {
        &self.0
    }
    fn udf_names(&self) -> Vec<String> {
        vec![]
    }
    fn higher_order_function_names(&self) -> Vec<String> {
        vec![]
    }
    fn udaf_names(&self) -> Vec<String> {
        vec![]
    }
    fn udwf_names(&self) -> Vec<String> {
        vec![]
    }
}

/// The text a type is stored as: sqlparser's rendering, upper case.
pub fn type_text(t: &SqlType) -> String {
    t.to_string().to_uppercase()
}

/// Parses a stored type text back into a SQL type.
pub fn parse_type(text: &str) -> Result<SqlType> {
    Parser::new(&HiveDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_data_type())
        .map_err(|e| SqlError::invalid(format!("bad column type {text:?}: {e}")))
}

/// Arrow fields of catalog columns (all nullable, as in Hive).
pub fn arrow_fields(columns: &[pb::Column]) -> Result<Vec<FieldRef>> {
    let defs = columns
        .iter()
        .map(|c| {
            Ok(ColumnDef { name: Ident::with_quote('`', c.name.clone()), data_type: parse_type(&c.data_type)?, options: vec![] })
        })
        .collect::<Result<Vec<_>>>()?;
    let provider = TypesOnly(ConfigOptions::default());
    let schema: Schema = SqlToRel::new(&provider)
        .build_schema(defs)
        .map_err(|e| SqlError::invalid(format!("unsupported column type: {e}")))?;
    Ok(schema.fields().iter().map(|f| Arc::new(f.as_ref().clone().with_nullable(true))).collect())
}

/// The SQL type a catalog column gets for an Arrow type (CTAS).
pub fn sql_type_of(t: &DataType) -> Result<String> {
    Ok(match t {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 => "SMALLINT".into(),
        DataType::UInt16 => "INT".into(),
        DataType::UInt32 | DataType::UInt64 => "BIGINT".into(),
        DataType::Float16 | DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BINARY".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(_, _) => "TIMESTAMP".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Null => "STRING".into(),
        other => return Err(SqlError::unsupported(format!("a column of type {other} in a table"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, t: &str) -> pb::Column {
        pb::Column { name: name.into(), data_type: t.into(), comment: String::new() }
    }

    #[test]
    fn hive_types_map_like_datafusion_sql() {
        let f = arrow_fields(&[
            col("a", "INT"),
            col("b", "STRING"),
            col("c", "DECIMAL(15,2)"),
            col("d", "DATE"),
            col("e", "BIGINT"),
            col("f", "DOUBLE"),
            col("g", "BOOLEAN"),
        ])
        .unwrap();
        let types: Vec<_> = f.iter().map(|f| f.data_type().clone()).collect();
        assert_eq!(
            types,
            [
                DataType::Int32,
                DataType::Utf8View,
                DataType::Decimal128(15, 2),
                DataType::Date32,
                DataType::Int64,
                DataType::Float64,
                DataType::Boolean
            ]
        );
        assert_eq!(f[0].name(), "a");
        assert!(arrow_fields(&[col("x", "NOT A TYPE(")]).is_err());
    }
}
