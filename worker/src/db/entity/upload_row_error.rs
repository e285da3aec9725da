//! `upload_row_errors`: per-row errors and warnings of an upload.
use sea_orm::entity::prelude::*;
use serde::Serialize;

/// A row problem.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, utoipa::ToSchema)]
#[sea_orm(table_name = "upload_row_errors")]
#[schema(as = RowProblem)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub upload_id: i64,
    pub line: i64,
    pub column_name: Option<String>,
    pub severity: String,
    pub message: String,
}

impl ActiveModelBehavior for ActiveModel {}
