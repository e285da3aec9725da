//! The operators' overview of every tenant.

use super::*;

/// A tenant and its newest upload, for the operators' overview.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TenantStatus {
    /// The tenant's slug.
    pub slug: String,
    /// Its newest upload; `None` when it has none yet.
    pub last_upload: Option<upload::Model>,
}

/// What platform operators see first: every tenant's last upload, the
/// backlog, and what needs a person across tenants.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Overview {
    /// Every tenant, by slug.
    pub tenants: Vec<TenantStatus>,
    /// Queued and running uploads, and held ones, across tenants.
    pub queue: crate::jobs::queue::QueueStats,
    /// The newest failed and held uploads across tenants (up to
    /// [`OVERVIEW_ATTENTION`]), newest first.
    pub attention: Vec<TenantUpload>,
}

/// An upload with its tenant's slug.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TenantUpload {
    /// The tenant's slug.
    pub slug: String,
    /// The upload.
    pub upload: upload::Model,
}

/// How many failed or held uploads the overview lists (a failure a later
/// success of its tenant replaced is not one of them).
pub const OVERVIEW_ATTENTION: u64 = 20;

impl Service {
    /// The operators' overview; platform callers only.
    pub async fn overview(&self, caller: &Caller) -> Result<Overview, ServiceError> {
        let db = &self.db;
        use sea_orm::{ColumnTrait, ConnectionTrait, QueryFilter, Statement};
        if *caller != Caller::Platform {
            return Err(ServiceError::Forbidden(
                "the overview of every tenant needs a platform token".into(),
            ));
        }
        let backend = db.get_database_backend();
        let rows = db
            .query_all_raw(Statement::from_string(
                backend,
                crate::db::queries::of(backend).last_upload_per_tenant,
            ))
            .await?;
        let mut wanted = Vec::with_capacity(rows.len());
        let mut slugs = std::collections::HashMap::new();
        for r in &rows {
            let slug: String = r.try_get("", "slug")?;
            let last: Option<i64> = r.try_get("", "last_upload_id")?;
            slugs.insert(r.try_get::<i64>("", "tenant_id")?, slug.clone());
            wanted.push((slug, last));
        }
        let ids: Vec<i64> = wanted.iter().filter_map(|(_, id)| *id).collect();
        let mut last: std::collections::HashMap<i64, upload::Model> = upload::Entity::find()
            .filter(upload::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|u| (u.id, u))
            .collect();
        let tenants = wanted
            .into_iter()
            .map(|(slug, id)| TenantStatus {
                slug,
                last_upload: id.and_then(|id| last.remove(&id)),
            })
            .collect();
        let attention = upload::Entity::find()
            .from_raw_sql(Statement::from_sql_and_values(
                backend,
                crate::db::queries::of(backend).attention_uploads,
                [(OVERVIEW_ATTENTION as i64).into()],
            ))
            .all(db)
            .await?
            .into_iter()
            .map(|u| TenantUpload {
                slug: slugs.get(&u.tenant_id).cloned().unwrap_or_default(),
                upload: u,
            })
            .collect();
        Ok(Overview {
            tenants,
            queue: crate::jobs::queue::stats(db).await?,
            attention,
        })
    }
}
