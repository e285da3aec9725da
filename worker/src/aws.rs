//! AWS SDK clients built from [`AwsConfig`]: one place that knows about
//! regions, endpoint overrides and path-style addressing.

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::config::AwsConfig;

/// Loads the shared SDK configuration. Credentials come from the SDK's
/// default chain (environment, web identity, instance profile), never from
/// Userfeed's own configuration.
pub async fn sdk_config(cfg: &AwsConfig) -> SdkConfig {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).region(Region::new(cfg.region.clone()));
    if !cfg.endpoint_url.is_empty() {
        loader = loader.endpoint_url(cfg.endpoint_url.clone());
    }
    loader.load().await
}

/// An S3 client honouring `s3_force_path_style`.
///
/// Response checksums are validated only when S3 requires it: multipart
/// objects (every file over 8 MB that `aws s3 cp` uploads) carry part-level
/// checksums the SDK cannot validate and would warn about on every read.
/// TLS already protects the bytes in transit.
pub fn s3_client(sdk: &SdkConfig, cfg: &AwsConfig) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(cfg.s3_force_path_style)
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// An SQS client.
pub fn sqs_client(sdk: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(sdk)
}

/// An IAM client (tenants' upload users).
pub fn iam_client(sdk: &SdkConfig) -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::new(sdk)
}

/// The IAM side of tenants' upload credentials, when this deployment talks
/// to AWS (it has an intake queue); `None` on the embedded default.
pub fn credentials(
    sdk: &SdkConfig,
    cfg: &crate::config::Config,
) -> Option<crate::credentials::Iam> {
    (!cfg.intake.queue_url.is_empty())
        .then(|| crate::credentials::Iam::new(iam_client(sdk), &cfg.credentials, &cfg.aws.region))
}
