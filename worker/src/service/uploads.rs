//! The upload history, its detail, problems and changes; holds, retries and undo.

use super::*;

/// The upload state named `name`, as a filter of the history takes it.
pub fn upload_state(name: &str) -> Result<UploadState, ServiceError> {
    name.parse()
        .map_err(|_| ServiceError::Invalid(format!("{name:?} is not an upload state")))
}

/// What resolving a hold did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Resolved {
    /// The upload.
    pub upload_id: i64,
    /// Users deactivated (approve) or deactivations dropped (reject).
    pub deactivations: u64,
}

/// A failed upload queued again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Retried {
    /// The failed upload.
    pub upload_id: i64,
    /// The new upload that will read its file again.
    pub retry_id: i64,
}

/// Whether upload `u`'s hold still waits for approve or reject.
pub fn hold_pending(u: &Upload) -> bool {
    u.state == UploadState::Held && u.hold_resolution.is_none()
}

/// An upload as `caller` may see it: a tenant's admin never sees a folder
/// of the host (the drop folder's place, a CLI import's directory), only
/// the location as the tenant names it (`drop/acme`, the S3 bucket).
fn as_seen_by(caller: &Caller, slug: &str, up: &mut upload::Model) {
    if let Caller::Tenant(_) = caller {
        up.bucket = up.source.shown_bucket(&up.bucket, slug);
    }
}

impl Service {
    /// A tenant's uploads, newest first.
    pub async fn uploads(
        &self,
        caller: &Caller,
        slug: &str,
        limit: u64,
    ) -> Result<Vec<upload::Model>, ServiceError> {
        let _db = &self.db;
        self.uploads_page(caller, slug, &report::UploadFilter::default(), limit)
            .await
    }

    /// A page of a tenant's uploads, newest first (see [`report::UploadFilter`]).
    pub async fn uploads_page(
        &self,
        caller: &Caller,
        slug: &str,
        filter: &report::UploadFilter,
        limit: u64,
    ) -> Result<Vec<upload::Model>, ServiceError> {
        let db = &self.db;
        let t = self.tenant(caller, slug).await?;
        let mut page = report::uploads_page(db, t.id, filter, limit).await?;
        for up in &mut page {
            as_seen_by(caller, &t.slug, up);
        }
        Ok(page)
    }

    /// The upload `id` if the caller reaches its tenant.
    pub(super) async fn reachable_upload(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<upload::Model, ServiceError> {
        use crate::db::entity::tenant;
        use sea_orm::sea_query::Query;
        use sea_orm::{ColumnTrait, QueryFilter};
        // One query whatever the answer: another tenant's upload and a
        // missing one cost the same, so timing tells a tenant nothing.
        let mut find = upload::Entity::find_by_id(id);
        if let Caller::Tenant(slug) = caller {
            find = find.filter(
                upload::Column::TenantId.in_subquery(
                    Query::select()
                        .column(tenant::Column::Id)
                        .from(tenant::Entity)
                        .and_where(tenant::Column::Slug.eq(slug.as_str()))
                        .to_owned(),
                ),
            );
        }
        find.one(&self.db).await?.ok_or_else(|| no_upload(id))
    }

    /// One upload with its first `problems` row problems.
    pub async fn upload(
        &self,
        caller: &Caller,
        id: i64,
        problems: u64,
    ) -> Result<UploadDetail, ServiceError> {
        let db = &self.db;
        self.reachable_upload(caller, id).await?;
        let mut detail = report::upload_detail(db, id, problems)
            .await?
            .ok_or_else(|| no_upload(id))?;
        let slug = detail.tenant.clone();
        as_seen_by(caller, &slug, &mut detail.upload);
        Ok(detail)
    }

    /// The people a held upload would deactivate if approved, by user id
    /// after `after` (none for an upload that holds nobody).
    pub async fn held_people(
        &self,
        caller: &Caller,
        id: i64,
        after: Option<i64>,
        limit: u64,
    ) -> Result<Vec<report::Person>, ServiceError> {
        self.reachable_upload(caller, id).await?;
        Ok(report::held_people(&self.db, id, after, limit).await?)
    }

    /// A page of an upload's row problems, by line, after `after`.
    pub async fn problems_page(
        &self,
        caller: &Caller,
        id: i64,
        after: Option<report::ProblemCursor>,
        limit: u64,
    ) -> Result<Vec<upload_row_error::Model>, ServiceError> {
        let db = &self.db;
        self.reachable_upload(caller, id).await?;
        Ok(report::problems_page(db, id, after, limit).await?)
    }

    /// A page of what an upload changed, after `after`, with the next cursor.
    pub async fn changes_page(
        &self,
        caller: &Caller,
        id: i64,
        after: Option<report::ChangeCursor>,
        limit: u64,
    ) -> Result<(Vec<Change>, Option<report::ChangeCursor>), ServiceError> {
        let db = &self.db;
        self.reachable_upload(caller, id).await?;
        Ok(report::changes_page(db, id, after, limit).await?)
    }

    /// What an upload changed.
    pub async fn changes(&self, caller: &Caller, id: i64) -> Result<Vec<Change>, ServiceError> {
        let db = &self.db;
        self.reachable_upload(caller, id).await?;
        Ok(report::changes(db, id).await?)
    }

    /// Performs a held upload's deactivations.
    pub async fn approve(&self, caller: &Caller, id: i64) -> Result<Resolved, ServiceError> {
        let db = &self.db;
        self.reachable_upload(caller, id).await?;
        let n = holds::approve(db, id).await?;
        Ok(Resolved {
            upload_id: id,
            deactivations: n,
        })
    }

    /// Drops a held upload's deactivations.
    pub async fn reject(&self, caller: &Caller, id: i64) -> Result<Resolved, ServiceError> {
        let db = &self.db;
        self.reachable_upload(caller, id).await?;
        let n = holds::reject(db, id).await?;
        Ok(Resolved {
            upload_id: id,
            deactivations: n,
        })
    }

    /// Reverts what an applied upload changed (the tenant's newest), or with
    /// `preview` says what that would do and changes nothing.
    pub async fn undo(
        &self,
        caller: &Caller,
        id: i64,
        preview: bool,
    ) -> Result<UndoReport, ServiceError> {
        let db = &self.db;
        self.reachable_upload(caller, id).await?;
        Ok(undo::undo(db, id, preview).await?)
    }

    /// Queues a failed upload's file again as a new upload.
    pub async fn retry(&self, caller: &Caller, id: i64) -> Result<Retried, ServiceError> {
        let db = &self.db;
        self.reachable_upload(caller, id).await?;
        let new_id = retry::retry(db, id).await?;
        Ok(Retried {
            upload_id: id,
            retry_id: new_id,
        })
    }

    /// The upload of tenant `slug` that may be undone now: its newest, when it
    /// applied. Undo refuses any other, saying why; the screens offer undo on
    /// this one only.
    pub async fn undoable(&self, caller: &Caller, slug: &str) -> Result<Option<i64>, ServiceError> {
        let _db = &self.db;
        let newest = self.uploads(caller, slug, 1).await?;
        Ok(newest
            .first()
            .filter(|u| u.state == UploadState::Succeeded)
            .map(|u| u.id))
    }
}
