//! A throwaway [moto](https://docs.getmoto.org) server for Secrets Manager, SQS and Kinesis
//! tests.
//!
//! [`start`] runs `moto_server -H 127.0.0.1 -p PORT` on a free loopback port (or uses
//! the server named by `MOTO_ENDPOINT`), and [`Moto`] wraps it with an
//! [`aws_config::SdkConfig`] that points only at it, plus shortcuts for the setup
//! steps tests need (create a secret, create a queue, drain a queue, create a stream, put a
//! record).
//!
//! `moto_server` comes from `pip install 'moto[server]'` (moto 5.x).
//!
//! Nothing here talks to any address but `127.0.0.1` (or the `MOTO_ENDPOINT` given):
//! the SDK config is built by hand with a fixed region, static credentials and an
//! explicit endpoint, so no environment variable, `~/.aws` file or instance metadata
//! service is ever consulted.
#![allow(dead_code)]

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};

/// The region every client built from [`Moto::sdk_config`] uses.
pub const REGION: &str = "us-east-1";

/// The account id moto puts in ARNs and queue URLs by default.
pub const ACCOUNT_ID: &str = "123456789012";

/// How long [`start`] waits for a new `moto_server` to answer HTTP.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running moto server. A server this module started is killed when this is dropped;
/// one given by `MOTO_ENDPOINT` is left alone.
pub struct Moto {
    /// Base URL of the server, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The `moto_server` process, if this module started it.
    child: Option<Child>,
    /// Where that process's output goes.
    log: Option<PathBuf>,
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(log) = self.log.take() {
            let _ = std::fs::remove_file(log);
        }
    }
}

/// Start a fresh `moto_server` on a free `127.0.0.1` port and wait (up to 20 s) until
/// it answers HTTP. If the environment variable `MOTO_ENDPOINT` is set (for example
/// `http://127.0.0.1:5000`), that server is used instead and nothing is started; as
/// its state is shared, tests should then use unique names.
///
/// Panics with installation advice if `moto_server` is missing or does not come up.
pub async fn start() -> Moto {
    if let Ok(endpoint) = std::env::var("MOTO_ENDPOINT") {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        if !wait_until_up(&endpoint, STARTUP_TIMEOUT, &mut None).await {
            panic!("MOTO_ENDPOINT={endpoint} does not answer HTTP");
        }
        return Moto {
            endpoint,
            child: None,
            log: None,
        };
    }

    // The port is found by binding and releasing it, so another process may grab it
    // before moto does; retry a few times with a new port if the server dies early.
    let mut last_error = String::new();
    for _attempt in 0..3 {
        let port = free_port();
        let log =
            std::env::temp_dir().join(format!("moto-server-{}-{port}.log", std::process::id()));
        let log_file = std::fs::File::create(&log).expect("create the moto_server log file");
        let spawned = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(
                log_file
                    .try_clone()
                    .expect("clone the moto_server log file handle"),
            )
            .stderr(log_file)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_file(&log);
                panic!(
                    "could not run `moto_server` ({e}). Install it with: pip install 'moto[server]' \
                     (or point MOTO_ENDPOINT at a running moto server)"
                );
            }
        };
        let endpoint = format!("http://127.0.0.1:{port}");
        // Wrap it at once so the process is killed even if waiting panics.
        let mut moto = Moto {
            endpoint,
            child: Some(child),
            log: Some(log.clone()),
        };
        if wait_until_up(&moto.endpoint, STARTUP_TIMEOUT, &mut moto.child).await {
            return moto;
        }
        let how = match moto.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => format!("exited ({status}) before answering"),
            _ => format!("did not answer within {STARTUP_TIMEOUT:?}"),
        };
        last_error = format!(
            "moto_server on {} {how}; its output:\n{}",
            moto.endpoint,
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        drop(moto);
    }
    panic!("{last_error}\nIs moto 5.x installed? Install it with: pip install 'moto[server]'");
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// Poll `endpoint` until moto answers there. Gives up early if `child` exits.
///
/// The answer must be moto's own (`GET /moto-api/data.json` → 200), not just any HTTP answer:
/// between [`free_port`] releasing the port and moto_server binding it, a server of a test
/// running in parallel (a fake org on `127.0.0.1:0`) can get the same port; moto then fails to
/// bind and exits, and that server must not be taken for moto.
async fn wait_until_up(endpoint: &str, timeout: Duration, child: &mut Option<Child>) -> bool {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("build a reqwest client");
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        let answer = http
            .get(format!("{endpoint}/moto-api/data.json"))
            .send()
            .await;
        if answer.is_ok_and(|a| a.status() == reqwest::StatusCode::OK) {
            return true;
        }
        if let Some(c) = child.as_mut()
            && matches!(c.try_wait(), Ok(Some(_)))
        {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

impl Moto {
    /// An [`SdkConfig`] for this server: region `us-east-1`, static credentials
    /// `testing`/`testing`, endpoint [`Moto::endpoint`]. It is built by hand rather than
    /// with `aws_config::defaults`, so no environment variable, profile file or IMDS
    /// is read; the SDK clients fill in their default HTTPS client and Tokio sleep.
    pub async fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "testing", "testing", None, None, "moto",
            )))
            .endpoint_url(self.endpoint.clone())
            .build()
    }

    /// The environment that points a child process's AWS SDK (the CLI, a test binary run
    /// again) at this server only: its endpoint, the region, static `testing` credentials, no
    /// instance metadata and no profile files.
    pub fn aws_env(&self) -> [(&'static str, String); 7] {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("AWS_CONFIG_FILE", "/dev/null".to_owned()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_owned()),
        ]
    }

    /// A Secrets Manager client for this server.
    pub async fn secretsmanager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk_config().await)
    }

    /// An SQS client for this server.
    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config().await)
    }

    /// Create a secret named `name` whose `SecretString` is `json`; returns its ARN.
    pub async fn create_secret(&self, name: &str, json: &str) -> String {
        let out = self
            .secretsmanager()
            .await
            .create_secret()
            .name(name)
            .secret_string(json)
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto CreateSecret {name}: {e:?}"));
        out.arn().expect("CreateSecret returns an ARN").to_owned()
    }

    /// Store `json` as the new current `SecretString` of the secret `arn` (or name).
    pub async fn put_secret_value(&self, arn: &str, json: &str) {
        self.secretsmanager()
            .await
            .put_secret_value()
            .secret_id(arn)
            .secret_string(json)
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto PutSecretValue {arn}: {e:?}"));
    }

    /// Create a standard SQS queue named `name`; returns its URL.
    pub async fn create_queue(&self, name: &str) -> String {
        self.create_queue_of_type(name, false).await
    }

    /// Create a FIFO SQS queue named `name` (which must end in `.fifo`); returns its URL.
    pub async fn create_fifo_queue(&self, name: &str) -> String {
        self.create_queue_of_type(name, true).await
    }

    /// Create a queue named `name`, FIFO when `fifo`; returns its URL.
    async fn create_queue_of_type(&self, name: &str, fifo: bool) -> String {
        let mut request = self.sqs().await.create_queue().queue_name(name);
        if fifo {
            request = request.attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true");
        }
        let out = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto CreateQueue {name}: {e:?}"));
        out.queue_url()
            .expect("CreateQueue returns a URL")
            .to_owned()
    }

    /// Receive every message now visible on `queue_url` (batches of 10, no long
    /// polling, all message and system attributes), until a receive comes back empty.
    /// Messages are not deleted but are hidden for 10 minutes, so each is returned
    /// once; a later call does not see them again within that time.
    pub async fn receive_all(&self, queue_url: &str) -> Vec<Message> {
        let sqs = self.sqs().await;
        let mut seen = HashSet::new();
        let mut all = Vec::new();
        loop {
            let out = sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .visibility_timeout(600)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap_or_else(|e| panic!("moto ReceiveMessage {queue_url}: {e:?}"));
            let batch = out.messages.unwrap_or_default();
            if batch.is_empty() {
                return all;
            }
            for message in batch {
                let id = message.message_id().unwrap_or_default().to_owned();
                if seen.insert(id) {
                    all.push(message);
                }
            }
        }
    }

    /// Every message now visible on `queue_url`, as [`Moto::receive_all`] returns them, made
    /// visible again at once (`ChangeMessageVisibility` to 0), so a later reader (a redrive)
    /// sees them too. On a FIFO queue a receive hands out at most 10 messages of a group.
    pub async fn peek_all(&self, queue_url: &str) -> Vec<Message> {
        let messages = self.receive_all(queue_url).await;
        let sqs = self.sqs().await;
        for message in &messages {
            let handle = message
                .receipt_handle()
                .expect("a received message has a receipt handle");
            sqs.change_message_visibility()
                .queue_url(queue_url)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await
                .unwrap_or_else(|e| panic!("moto ChangeMessageVisibility {queue_url}: {e:?}"));
        }
        messages
    }

    /// A Kinesis client for this server.
    pub async fn kinesis(&self) -> aws_sdk_kinesis::Client {
        aws_sdk_kinesis::Client::new(&self.sdk_config().await)
    }

    /// Send `body` to the standard queue `queue_url`; returns the message id.
    pub async fn send_message(&self, queue_url: &str, body: &str) -> String {
        self.send_to(queue_url, body, None).await
    }

    /// Send `body` to the FIFO queue `queue_url` in message group `group` with deduplication
    /// id `dedup`; returns the message id.
    pub async fn send_fifo_message(
        &self,
        queue_url: &str,
        body: &str,
        group: &str,
        dedup: &str,
    ) -> String {
        self.send_to(queue_url, body, Some((group, dedup))).await
    }

    /// Send `body` to `queue_url`, with `(message group, deduplication id)` on a FIFO queue;
    /// returns the message id.
    async fn send_to(&self, queue_url: &str, body: &str, fifo: Option<(&str, &str)>) -> String {
        let out = self
            .sqs()
            .await
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .set_message_group_id(fifo.map(|(group, _)| group.to_owned()))
            .set_message_deduplication_id(fifo.map(|(_, dedup)| dedup.to_owned()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto SendMessage {queue_url}: {e:?}"));
        out.message_id()
            .expect("SendMessage returns an id")
            .to_owned()
    }

    /// `(visible, in flight)` message counts of `queue_url` (`GetQueueAttributes`
    /// `ApproximateNumberOfMessages` / `…NotVisible`, exact on moto).
    pub async fn message_counts(&self, queue_url: &str) -> (u64, u64) {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .sqs()
            .await
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto GetQueueAttributes {queue_url}: {e:?}"));
        let attributes = out.attributes().cloned().unwrap_or_default();
        let count = |name: &A| {
            attributes
                .get(name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (
            count(&A::ApproximateNumberOfMessages),
            count(&A::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// Create a Kinesis stream named `name` with `shards` shards; returns its ARN. moto creates
    /// streams `ACTIVE` at once.
    pub async fn create_stream(&self, name: &str, shards: i32) -> String {
        let kinesis = self.kinesis().await;
        kinesis
            .create_stream()
            .stream_name(name)
            .shard_count(shards)
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto CreateStream {name}: {e:?}"));
        let summary = kinesis
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto DescribeStreamSummary {name}: {e:?}"));
        summary
            .stream_description_summary()
            .expect("a stream summary")
            .stream_arn()
            .to_owned()
    }

    /// Put `data` into the stream `stream_arn` under `partition_key`; returns
    /// `(shard id, sequence number)`.
    pub async fn put_record(
        &self,
        stream_arn: &str,
        data: &[u8],
        partition_key: &str,
    ) -> (String, String) {
        let out = self
            .kinesis()
            .await
            .put_record()
            .stream_arn(stream_arn)
            .data(aws_sdk_kinesis::primitives::Blob::new(data))
            .partition_key(partition_key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto PutRecord {stream_arn}: {e:?}"));
        (out.shard_id().to_owned(), out.sequence_number().to_owned())
    }

    /// Reset all of moto's state (`POST /moto-api/reset`): every secret, queue and
    /// message is gone afterwards.
    pub async fn reset(&self) {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("build a reqwest client")
            .post(format!("{}/moto-api/reset", self.endpoint))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|e| panic!("moto reset: {e}"));
    }
}

/// A received message's body parsed as JSON (dead letters are JSON); panics when it is not.
pub fn body_json(message: &Message) -> serde_json::Value {
    serde_json::from_str(message.body().expect("a body")).expect("dead letters are JSON")
}

/// A received message's string attribute `name`.
pub fn attribute<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message.message_attributes()?.get(name)?.string_value()
}
