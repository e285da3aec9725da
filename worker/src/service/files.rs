//! Files sent by a person: mapping suggestions, templates, previews and manual uploads.

use super::*;

/// A mapping suggested from a sample file's header.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SuggestedMapping {
    /// The file's columns, in order.
    pub columns: Vec<String>,
    /// The suggestion as a mapping document (what `PUT .../mapping` takes).
    pub mapping: Mapping,
    /// The same as a commented TOML file (what `userfeed mapping set` takes).
    pub toml: String,
    /// Columns not recognised (candidates for custom profile fields).
    pub unmapped: Vec<String>,
    /// The file's first rows (up to [`SAMPLE_ROWS`]), for a preview beside
    /// the mapping.
    pub sample: Vec<Vec<String>>,
}

/// How many rows of a sample file [`suggest_mapping`] returns.
pub const SAMPLE_ROWS: usize = 5;

/// Suggests a mapping from the header of the CSV `file` (only the header
/// is read).
pub async fn suggest_mapping(file: &std::path::Path) -> Result<SuggestedMapping, ServiceError> {
    let f = tokio::fs::File::open(file)
        .await
        .map_err(|e| ServiceError::Invalid(format!("the sample file could not be read: {e}")))?;
    let mut csv = crate::parse::CsvStream::open(f).await.map_err(|e| {
        ServiceError::Invalid(format!("the sample file has no readable header: {e}"))
    })?;
    let s = crate::map::tools::suggest(csv.header());
    let mut sample = Vec::new();
    // A row that does not parse ends the sample; the header is what counts.
    while sample.len() < SAMPLE_ROWS {
        match csv.next_row().await {
            Ok(Some((_, fields))) => sample.push(fields.iter().map(|f| f.to_string()).collect()),
            _ => break,
        }
    }
    Ok(SuggestedMapping {
        columns: csv.header().to_vec(),
        toml: s.to_toml(),
        mapping: s.mapping,
        unmapped: s.unmapped,
        sample,
    })
}

impl Service {
    /// A mapping suggested for tenant `slug` from the header of the CSV
    /// `file`: as [`suggest_mapping`], and each of the tenant's custom profile
    /// fields chosen where a column has its name. The API and the screens
    /// both offer this one suggestion.
    pub async fn suggest_mapping_for(
        &self,
        caller: &Caller,
        slug: &str,
        file: &std::path::Path,
    ) -> Result<SuggestedMapping, ServiceError> {
        let _db = &self.db;
        let t = self.tenant(caller, slug).await?;
        let mut suggested = suggest_mapping(file).await?;
        for key in t.profile_fields.keys() {
            if let Some(c) = suggested
                .columns
                .iter()
                .find(|c| crate::map::tools::same_name(c, key))
            {
                suggested.mapping.profile.insert(key.clone(), c.clone());
                suggested.unmapped.retain(|u| u != c);
            }
        }
        suggested.toml = suggested.mapping.to_toml();
        Ok(suggested)
    }

    /// The CSV template (header and example row) for a tenant's mapping.
    pub async fn template(&self, caller: &Caller, slug: &str) -> Result<String, ServiceError> {
        let _db = &self.db;
        let t = self.tenant(caller, slug).await?;
        let Some(m) = &t.mapping else {
            return Err(ServiceError::Refused(format!(
                "tenant {slug} has no mapping yet; set one first"
            )));
        };
        Ok(crate::map::tools::template(m, &t.profile_fields))
    }

    /// What the CSV `file` would do for a tenant; nothing changes.
    pub async fn preview(
        &self,
        caller: &Caller,
        slug: &str,
        file: &std::path::Path,
    ) -> Result<crate::apply::preview::PreviewReport, ServiceError> {
        let db = &self.db;
        let batch_size = self.batch_size;
        let limits = self.limits;
        use crate::apply::preview::{self, PreviewError};
        let t = self.tenant(caller, slug).await?;
        if t.mapping.is_none() {
            return Err(ServiceError::Refused(format!(
                "tenant {slug} has no mapping yet; set one first"
            )));
        }
        // One per tenant, a few at once, within a deadline that grows
        // with the file (`service::fair`).
        let _pass = self.previews.enter(t.id, slug)?;
        let bytes = tokio::fs::metadata(file).await.map_or(0, |m| m.len());
        let deadline = self.previews.deadline(bytes);
        let run = preview::preview(db, &t, file, batch_size, limits, deadline);
        let done = match deadline {
            Some(d) => tokio::time::timeout(d, run).await.map_err(|_| {
                ServiceError::Unavailable(format!(
                    "the preview took longer than its {} s; try a smaller file, or upload it",
                    d.as_secs()
                ))
            })?,
            None => run.await,
        };
        done.map_err(|e| match e {
            PreviewError::WouldFail(_) => ServiceError::Invalid(e.to_string()),
            PreviewError::Other(m) => ServiceError::Db(DbErr::Custom(m)),
        })
    }

    /// Whether files can be sent for the tenant from here (the API's and
    /// the screens' manual upload): the screens offer it only then.
    pub async fn can_deliver(&self, caller: &Caller, slug: &str) -> Result<bool, ServiceError> {
        let t = self.tenant(caller, slug).await?;
        Ok(self.deliver.can_deliver(&t))
    }

    /// Delivers a manual upload where the tenant's drops go, so it is queued
    /// like one ([`crate::intake::manual`]).
    pub async fn deliver_file(
        &self,
        caller: &Caller,
        slug: &str,
        name: Option<&str>,
        file: &std::path::Path,
        bytes: u64,
    ) -> Result<crate::intake::manual::Delivered, ServiceError> {
        let _db = &self.db;
        let to = &self.deliver;
        use crate::intake::manual::{ManualError, delivered_name};
        let t = self.tenant(caller, slug).await?;
        let name = delivered_name(name).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let done = to
            .deliver(&t, &name, file, bytes)
            .await
            .map_err(|e| match e {
                ManualError::BadName(_) => ServiceError::Invalid(e.to_string()),
                ManualError::NoIntake(_) => ServiceError::Refused(e.to_string()),
                ManualError::Delivery(_) => ServiceError::Unavailable(e.to_string()),
            })?;
        tracing::info!(tenant = slug, location = %done.location, bytes, "manual upload delivered");
        Ok(done)
    }
}
