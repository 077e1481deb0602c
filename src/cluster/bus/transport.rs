//! The subscriber's connection: a pub/sub connection to one Redis server, or (feature
//! `redis-cluster`) a RESP3 Redis Cluster connection with sharded subscriptions, each
//! channel on the shard that owns its hash slot.

use futures_util::StreamExt;
use redis::RedisResult;
use redis::aio::{PubSubSink, PubSubStream};

use crate::cluster::backplane::{Backplane, BackplaneError, BackplaneErrorKind};
use crate::cluster::config::{ClusterConfig, Target};

/// A message that came on a subscribed channel.
pub(super) struct Delivered {
    pub(super) channel: String,
    pub(super) payload: Vec<u8>,
}

/// One live subscriber connection.
pub(super) enum Transport {
    Standalone {
        sink: PubSubSink,
        stream: PubSubStream,
    },
    #[cfg(feature = "redis-cluster")]
    Cluster {
        connection: redis::cluster_async::ClusterConnection,
        pushes: tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
    },
}

impl Transport {
    /// Opens a subscriber connection within the connection timeout plus the response
    /// timeout.
    pub(super) async fn connect(config: &ClusterConfig) -> Result<Self, BackplaneError> {
        let deadline = config.connection_timeout() + config.response_timeout();
        let connect = async {
            match &config.target {
                Target::Standalone(client) => {
                    let (sink, stream) = client.get_async_pubsub().await?.split();
                    Ok::<_, redis::RedisError>(Self::Standalone { sink, stream })
                }
                #[cfg(feature = "redis-cluster")]
                Target::Cluster { infos, .. } => {
                    let (sender, pushes) = tokio::sync::mpsc::unbounded_channel();
                    let connection = redis::cluster::ClusterClientBuilder::new(infos.clone())
                        .use_protocol(redis::ProtocolVersion::RESP3)
                        .connection_timeout(config.connection_timeout())
                        .response_timeout(config.response_timeout())
                        .push_sender(sender)
                        .build()?
                        .get_async_connection()
                        .await?;
                    Ok(Self::Cluster { connection, pushes })
                }
            }
        };
        match tokio::time::timeout(deadline, connect).await {
            Ok(result) => result.map_err(BackplaneError::from),
            Err(_) => Err(BackplaneError::from_kind(BackplaneErrorKind::Timeout)),
        }
    }

    /// Subscribes to `channels` (sharded on a cluster: one command per channel, since
    /// channels of different slots may not share one).
    pub(super) async fn subscribe(&mut self, channels: &[&str]) -> RedisResult<()> {
        match self {
            Self::Standalone { sink, .. } => sink.subscribe(channels).await,
            #[cfg(feature = "redis-cluster")]
            Self::Cluster { connection, .. } => {
                for channel in channels {
                    connection.ssubscribe(*channel).await?;
                }
                Ok(())
            }
        }
    }

    /// Unsubscribes from `channel`.
    pub(super) async fn unsubscribe(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            Self::Standalone { sink, .. } => sink.unsubscribe(channel).await,
            #[cfg(feature = "redis-cluster")]
            Self::Cluster { connection, .. } => connection.sunsubscribe(channel).await,
        }
    }

    /// The next message on a subscribed channel; `None` when the connection is gone.
    pub(super) async fn next(&mut self) -> Option<Delivered> {
        match self {
            Self::Standalone { stream, .. } => {
                let message = stream.next().await?;
                Some(Delivered {
                    channel: message.get_channel_name().to_owned(),
                    payload: message.get_payload_bytes().to_vec(),
                })
            }
            #[cfg(feature = "redis-cluster")]
            Self::Cluster { pushes, .. } => loop {
                let push = pushes.recv().await?;
                // Subscription confirmations and disconnection notices carry no message;
                // the cluster connection subscribes again by itself after a reconnect.
                if push.kind != redis::PushKind::SMessage {
                    continue;
                }
                if let [channel, payload] = push.data.as_slice()
                    && let (redis::Value::BulkString(channel), redis::Value::BulkString(payload)) =
                        (channel, payload)
                {
                    return Some(Delivered {
                        channel: String::from_utf8_lossy(channel).into_owned(),
                        payload: payload.clone(),
                    });
                }
            },
        }
    }
}

/// Publishes `payload` on `channel` (sharded on a cluster) and returns how many
/// subscribers Redis handed it to.
pub(super) async fn publish(
    backplane: &Backplane,
    channel: &str,
    payload: Vec<u8>,
) -> Result<usize, BackplaneError> {
    let command = match &backplane.config().target {
        Target::Standalone(_) => "PUBLISH",
        #[cfg(feature = "redis-cluster")]
        Target::Cluster { .. } => "SPUBLISH",
    };
    backplane
        .call(|mut connection| async move {
            redis::cmd(command)
                .arg(channel)
                .arg(payload)
                .query_async(&mut connection)
                .await
        })
        .await
}
