//! [`IntakeSource`] over Amazon SQS, long-polling.

use async_trait::async_trait;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};

use super::{Delivery, IntakeError, IntakeSource};
use crate::config::IntakeConfig;

/// Long-polls one SQS queue.
pub struct SqsSource {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    wait_time_seconds: i32,
    max_messages: i32,
    visibility_timeout_seconds: i32,
}

impl SqsSource {
    /// A source for `cfg.queue_url`.
    pub fn new(client: aws_sdk_sqs::Client, cfg: &IntakeConfig) -> Self {
        SqsSource {
            client,
            queue_url: cfg.queue_url.clone(),
            wait_time_seconds: cfg.wait_time_seconds as i32,
            max_messages: cfg.max_messages as i32,
            visibility_timeout_seconds: cfg.visibility_timeout_seconds as i32,
        }
    }
}

#[async_trait]
impl IntakeSource for SqsSource {
    fn name(&self) -> &'static str {
        "sqs"
    }

    async fn receive(&self) -> Result<Vec<Delivery>, IntakeError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.max_messages)
            .wait_time_seconds(self.wait_time_seconds)
            .visibility_timeout(self.visibility_timeout_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| IntakeError::Receive {
                source_name: "sqs",
                message: DisplayErrorContext(&e).to_string(),
            })?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let receive_count = m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                Some(Delivery {
                    message_id: m.message_id.unwrap_or_default(),
                    body: m.body.unwrap_or_default(),
                    receive_count,
                    ack_handle: m.receipt_handle?,
                })
            })
            .collect())
    }

    async fn ack(&self, handles: &[String]) -> Result<usize, IntakeError> {
        let mut deleted = 0;
        // DeleteMessageBatch takes at most 10 entries.
        for chunk in handles.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(h)
                        .build()
                        .expect("id and receipt handle are set")
                })
                .collect::<Vec<_>>();
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| IntakeError::Ack {
                    source_name: "sqs",
                    message: DisplayErrorContext(&e).to_string(),
                })?;
            deleted += out.successful.len();
            if !out.failed.is_empty() {
                let why: Vec<String> = out
                    .failed
                    .iter()
                    .map(|f| format!("{}: {}", f.code, f.message.clone().unwrap_or_default()))
                    .collect();
                return Err(IntakeError::Ack {
                    source_name: "sqs",
                    message: why.join("; "),
                });
            }
        }
        Ok(deleted)
    }
}
